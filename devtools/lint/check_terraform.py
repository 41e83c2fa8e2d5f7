"""Offline Terraform checks: parse every .tf file and resolve every reference.

    python check_terraform.py TERRAFORM_DIR

`terraform validate` needs the providers, which `terraform init` downloads from the Terraform
registry (not reachable here; CI's terraform job runs it). This covers what can be checked
without them: every file parses as HCL2 (python-hcl2), every var./local./data./resource
reference points at something declared, every variable has a type and a description, and
every provider is pinned to one exact version.
checkov (lint.sh step checkov) checks the resources' security settings, not whether the
configuration is well-formed: it has no policy for an unresolved reference, an untyped or
undescribed variable or a provider version range, so these stay here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hcl2

# A reference in an expression: var.x, local.x, data.TYPE.NAME, or RESOURCE_TYPE.NAME.
REFERENCE = re.compile(r"(?<![\w.\"/-])(var|local|data\.[a-z0-9_]+|[a-z][a-z0-9]*_[a-z0-9_]+)\.([A-Za-z_][\w-]*)")
EXACT_VERSION = re.compile(r"^=?\s*\d+\.\d+\.\d+$")
# Names that look like TYPE.NAME but are not references to declared objects.
NOT_REFERENCES = {"each", "count", "path", "terraform", "self"}


def unquote(value: object) -> str:
    """python-hcl2 keeps the quotes of block labels and string values ("\"name\"")."""
    text = str(value)
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def named(mapping: dict) -> dict[str, object]:
    """A parsed block's entries without python-hcl2's markers (__is_block__, __comments__)."""
    return {unquote(key): value for key, value in mapping.items() if not str(key).startswith("__")}


def strip_strings_outside_interpolation(text: str) -> str:
    """Blank out string literals but keep ${...} interpolations, so only expressions are scanned."""
    out, i, in_string, depth = [], 0, False, 0
    while i < len(text):
        char = text[i]
        if in_string:
            if depth == 0 and text.startswith("${", i):
                depth, i = 1, i + 2
                out.append(" ")
                continue
            if depth > 0:
                depth += {"{": 1, "}": -1}.get(char, 0)
                out.append(char if depth > 0 else " ")
            elif char == "\\":
                out.append("  ")
                i += 2
                continue
            elif char == '"':
                in_string = False
                out.append(" ")
            else:
                out.append(" ")
        elif char == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end == -1 else end
            out.append(" " * (end - i))
            i = end
            continue
        else:
            if char == '"':
                in_string = True
            out.append(char if char != '"' else " ")
        i += 1
    return "".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_terraform.py TERRAFORM_DIR", file=sys.stderr)
        return 2
    files = sorted(Path(argv[0]).glob("*.tf"))
    if not files:
        print(f"check_terraform: no .tf files in {argv[0]}", file=sys.stderr)
        return 1
    errors: list[str] = []
    parsed: dict[Path, dict] = {}
    for path in files:
        try:
            with path.open(encoding="utf-8") as handle:
                parsed[path] = hcl2.load(handle)
        except Exception as error:  # python-hcl2 raises lark errors of several types
            errors.append(f"{path}: HCL parse error: {error}")
    variables, locals_, resources, data_sources = set(), set(), set(), set()
    for path, body in parsed.items():
        for block in body.get("variable", []):
            for name, spec in named(block).items():
                variables.add(name)
                for attribute in ("type", "description"):
                    if attribute not in spec:
                        errors.append(f"{path}: variable {name} has no {attribute}")
        for block in body.get("locals", []):
            locals_.update(named(block))
        for block in body.get("resource", []):
            for type_name, instances in named(block).items():
                resources.update(f"{type_name}.{name}" for name in named(instances))
        for block in body.get("data", []):
            for type_name, instances in named(block).items():
                data_sources.update(f"data.{type_name}.{name}" for name in named(instances))
        for block in body.get("terraform", []):
            for providers in block.get("required_providers", []):
                for provider, spec in named(providers).items():
                    version = unquote(spec.get("version", "")) if isinstance(spec, dict) else ""
                    if not EXACT_VERSION.match(version):
                        errors.append(f"{path}: provider {provider} must be pinned to one version, not {version!r}")
    # Inside a dynamic block, its label (or `iterator = NAME`) names the iteration variable.
    iterators = set(NOT_REFERENCES)
    for path in parsed:
        source = path.read_text(encoding="utf-8")
        iterators.update(re.findall(r'dynamic\s+"([\w-]+)"', source))
        iterators.update(re.findall(r"\biterator\s*=\s*([\w-]+)", source))
    for path in parsed:
        text = strip_strings_outside_interpolation(path.read_text(encoding="utf-8"))
        for line_number, line in enumerate(text.splitlines(), 1):
            for match in REFERENCE.finditer(line):
                kind, name = match.groups()
                where = f"{path}:{line_number}"
                if kind == "var" and name not in variables:
                    errors.append(f"{where}: undeclared variable var.{name}")
                elif kind == "local" and name not in locals_:
                    errors.append(f"{where}: undeclared local.{name}")
                elif kind.startswith("data.") and f"{kind}.{name}" not in data_sources:
                    errors.append(f"{where}: undeclared {kind}.{name}")
                elif (
                    kind not in ("var", "local")
                    and not kind.startswith("data.")
                    and kind not in iterators
                    and "_" in kind
                    and f"{kind}.{name}" not in resources
                ):
                    errors.append(f"{where}: undeclared resource {kind}.{name}")
    for error in errors:
        print(error)
    if errors:
        print(f"check_terraform: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_terraform: {len(files)} file(s) parse; every reference resolves; providers pinned")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
