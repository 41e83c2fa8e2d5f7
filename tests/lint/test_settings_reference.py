"""Each service's .env.example is its settings reference: every variable its code reads is listed
there, and every variable listed is read.

A variable counts as read when the service's code (its copy of binpay_common included, its tests
and test runner excluded) names it as a literal in `os.environ[...]`, `os.environ.get(...)`,
`os.getenv(...)`, `"NAME" in os.environ`, the same forms on a mapping called `environ` or `env`
(settings read from a passed-in environment), or as the first argument of a binpay_common.env
helper (`env_str("NAME", ...)`, ...). Names the gateway builds from KNOB_SPECS and names read by a
library rather than by our code (LIBRARY_READS) are added explicitly. A listed variable is a line
`NAME=value` or, for one that is normally left unset, a commented-out `# NAME=value`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from lint_support import REPO

SERVICES = ("initiator", "processor", "gateway")
# Test code is not the service: its variables configure the tests, not a deployment.
TEST_CODE = re.compile(r"(^|/)(tests|testing)/|(^|/)(conftest|test_runner)\.py$")
HELPERS = {"env_str", "env_int", "env_float", "env_bool", "env_list"}
MAPPINGS = {"environ", "env"}
# Read by a library the service runs, not by its code.
LIBRARY_READS = {
    # google-cloud-pubsub and google-cloud-firestore connect to an emulator when these are set.
    "initiator": {"PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "PORT"},
    "processor": {"PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"},
    "gateway": set(),
}
# PORT, WEB_CONCURRENCY: gunicorn binds 0.0.0.0:$PORT when PORT is set, and starts $WEB_CONCURRENCY
# workers when no -w is given (https://docs.gunicorn.org/en/stable/settings.html, `bind`, `workers`).
LISTED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=")


def _literal(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]*", node.value):
        return node.value
    return None


def _is_environment(node: ast.AST) -> bool:
    """os.environ, or a mapping named environ/env."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id in MAPPINGS


def names_read(source: str) -> set[str]:
    """The environment variables one module reads by a literal name."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Call):
            function = node.func
            first = node.args[0] if node.args else None
            if isinstance(function, ast.Name) and function.id in HELPERS:
                name = _literal(first)
            elif isinstance(function, ast.Attribute) and function.attr == "getenv":
                name = _literal(first)
            elif isinstance(function, ast.Attribute) and function.attr == "get" and _is_environment(function.value):
                name = _literal(first)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environment(node.value):
            name = _literal(node.slice)
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            if any(_is_environment(comparator) for comparator in node.comparators):
                name = _literal(node.left)
        if name:
            found.add(name)
    return found


def gateway_knobs(source: str) -> set[str]:
    """The gateway reads every KNOB_SPECS key, upper-cased, as a SANDBOX_* variable."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "KNOB_SPECS":
            return {key.value.upper() for key in node.value.keys}
    raise AssertionError("gateway/sandbox_gateway/settings.py has no KNOB_SPECS")


def read_by_service(root: Path, service: str) -> set[str]:
    names = set(LIBRARY_READS[service])
    for path in sorted((root / service).rglob("*.py")):
        relative = path.relative_to(root / service).as_posix()
        if TEST_CODE.search(relative) or "/." in f"/{relative}":
            continue
        source = path.read_text()
        names |= names_read(source)
        if service == "gateway" and relative == "sandbox_gateway/settings.py":
            names |= gateway_knobs(source)
    return names


def listed_by_service(root: Path, service: str) -> set[str]:
    lines = (root / service / ".env.example").read_text().splitlines()
    return {match.group(1) for line in lines if (match := LISTED.match(line))}


def reference_problems(root: Path, service: str) -> list[str]:
    read, listed = read_by_service(root, service), listed_by_service(root, service)
    problems = [f"{service}: {name} is read but not listed in {service}/.env.example" for name in sorted(read - listed)]
    problems += [
        f"{service}: {name} is listed in {service}/.env.example but never read" for name in sorted(listed - read)
    ]
    return problems


@pytest.mark.parametrize("service", SERVICES)
def test_env_example_lists_exactly_what_the_service_reads(service):
    problems = reference_problems(REPO, service)
    assert not problems, "\n" + "\n".join(problems)


def test_every_read_form_is_found_and_both_directions_are_reported(tmp_path):
    package = tmp_path / "initiator" / "app"
    package.mkdir(parents=True)
    (package / "settings.py").write_text(
        "import os\n"
        "from binpay_common.env import env_int\n"
        "A = os.environ['SUBSCRIPT']\n"
        "B = os.environ.get('GET')\n"
        "C = os.getenv('GETENV')\n"
        "D = 'MEMBER' in os.environ\n"
        "E = env_int('HELPER', 1)\n"
        "def read(environ):\n"
        "    return environ.get('PASSED_IN')\n"
        "os.environ['WRITTEN'] = '1'\n"
    )
    (tmp_path / "initiator" / "tests").mkdir()
    (tmp_path / "initiator" / "tests" / "test_x.py").write_text("import os\nos.environ.get('TEST_ONLY')\n")
    (tmp_path / "initiator" / ".env.example").write_text(
        "# comment with NOT_A_SETTING=1 inside\nSUBSCRIPT=1\nGET=\n# GETENV=x\nMEMBER=\nPASSED_IN=\nSTALE=1\n"
        "PUBSUB_EMULATOR_HOST=\nFIRESTORE_EMULATOR_HOST=\nPORT=\n"
    )

    assert reference_problems(tmp_path, "initiator") == [
        "initiator: HELPER is read but not listed in initiator/.env.example",
        "initiator: STALE is listed in initiator/.env.example but never read",
    ]
