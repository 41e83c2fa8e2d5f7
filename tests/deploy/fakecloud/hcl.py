"""A small evaluator of HCL expressions: the subset terraform/*.tf uses, on python-hcl2's output.

python-hcl2 keeps every attribute as expression text ("${var.x}", "\"a-${b}\""); this parses that
text (templates, references, indexes, function calls, conditionals, comparisons, for expressions,
lists and objects) and evaluates it against a scope. An unsupported form raises, so the fake
never guesses what Terraform would compute.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import yaml

TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<string>\")|(?P<name>[A-Za-z_][A-Za-z0-9_-]*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||=>|\.\.\.|[-+*/%<>!?:.,()\[\]{}=]))"
)


class HclError(Exception):
    pass


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        match = TOKEN.match(self.text, self.position)
        if not match:
            if self.text[self.position :].strip():
                raise HclError(f"cannot parse {self.text[self.position :]!r}")
            return None
        kind = match.lastgroup
        return kind, match.group(kind)

    def take(self, expected: str | None = None) -> tuple[str, str]:
        match = TOKEN.match(self.text, self.position)
        if not match:
            raise HclError(f"unexpected end of {self.text!r}")
        kind = match.lastgroup
        value = match.group(kind)
        if expected is not None and value != expected:
            raise HclError(f"expected {expected!r} at {self.text[match.start() :]!r}")
        self.position = match.end()
        return kind, value

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[1] == value and token[0] in ("op", "name")

    def expression(self):
        condition = self.binary(0)
        if self.at("?"):
            self.take("?")
            then = self.expression()
            self.take(":")
            otherwise = self.expression()
            return ("if", condition, then, otherwise)
        return condition

    LEVELS = [("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%")]

    def binary(self, level: int):
        if level == len(self.LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while True:
            token = self.peek()
            if token and token[0] == "op" and token[1] in self.LEVELS[level]:
                self.take()
                left = ("op", token[1], left, self.binary(level + 1))
            else:
                return left

    def unary(self):
        if self.at("!"):
            self.take()
            return ("not", self.unary())
        if self.at("-"):
            self.take()
            return ("neg", self.unary())
        return self.postfix(self.primary())

    def postfix(self, node):
        while True:
            if self.at("."):
                self.take()
                kind, value = self.take()
                node = ("attr", node, value if kind == "name" else int(value))
            elif self.at("["):
                self.take()
                index = self.expression()
                self.take("]")
                node = ("index", node, index)
            else:
                return node

    def primary(self):
        kind, value = self.take()
        if kind == "number":
            return ("literal", float(value) if "." in value else int(value))
        if kind == "string":
            return self.template_rest()
        if kind == "name":
            if value in ("true", "false"):
                return ("literal", value == "true")
            if value == "null":
                return ("literal", None)
            if self.at("("):
                self.take("(")
                args = []
                while not self.at(")"):
                    args.append(self.expression())
                    if self.at(","):
                        self.take(",")
                self.take(")")
                return ("call", value, args)
            return ("var", value)
        if value == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if value == "[":
            return self.list_or_for()
        if value == "{":
            return self.object_or_for()
        raise HclError(f"unexpected {value!r} in {self.text!r}")

    def list_or_for(self):
        if self.at("for"):
            self.take("for")
            names = [self.take()[1]]
            if self.at(","):
                self.take(",")
                names.append(self.take()[1])
            self.take("in")
            source = self.expression()
            self.take(":")
            body = self.expression()
            condition = None
            if self.at("if"):
                self.take("if")
                condition = self.expression()
            self.take("]")
            return ("for_list", names, source, body, condition)
        items = []
        while not self.at("]"):
            items.append(self.expression())
            if self.at(","):
                self.take(",")
        self.take("]")
        return ("list", items)

    def object_or_for(self):
        if self.at("for"):
            self.take("for")
            names = [self.take()[1]]
            if self.at(","):
                self.take(",")
                names.append(self.take()[1])
            self.take("in")
            source = self.expression()
            self.take(":")
            key = self.expression()
            self.take("=>")
            value = self.expression()
            condition = None
            if self.at("if"):
                self.take("if")
                condition = self.expression()
            self.take("}")
            return ("for_map", names, source, key, value, condition)
        items = []
        while not self.at("}"):
            key = self.expression()
            if key[0] == "var":
                key = ("literal", key[1])
            self.take("=" if self.at("=") else ":")
            items.append((key, self.expression()))
            if self.at(","):
                self.take(",")
        self.take("}")
        return ("object", items)

    def template_rest(self):
        """After an opening quote: literal text and ${...} parts up to the closing quote."""
        parts = []
        literal = ""
        while True:
            if self.position >= len(self.text):
                raise HclError(f"unterminated string in {self.text!r}")
            char = self.text[self.position]
            if char == "\\":
                literal += {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(
                    self.text[self.position + 1], self.text[self.position + 1]
                )
                self.position += 2
            elif char == '"':
                self.position += 1
                break
            elif self.text.startswith("${", self.position):
                if literal:
                    parts.append(("literal", literal))
                    literal = ""
                self.position += 2
                parts.append(self.expression())
                self.take("}")
            else:
                literal += char
                self.position += 1
        if literal or not parts:
            parts.append(("literal", literal))
        return ("template", parts)


def parse_value(raw):
    """python-hcl2's value (expression text, or a list/dict of them) as an AST."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("${") and text.endswith("}") and _single_interpolation(text):
            text = text[2:-1]
        parser = Parser(text)
        node = parser.expression()
        if parser.peek() is not None:
            raise HclError(f"trailing text in {raw!r}")
        return node
    if isinstance(raw, bool | int | float) or raw is None:
        return ("literal", raw)
    if isinstance(raw, list):
        return ("list", [parse_value(item) for item in raw])
    if isinstance(raw, dict):
        return (
            "object",
            [(("literal", k.strip('"')), parse_value(v)) for k, v in raw.items() if not k.startswith("__")],
        )
    raise HclError(f"value {raw!r}")


def _single_interpolation(text: str) -> bool:
    depth = 0
    for index, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0 and index != len(text) - 1:
                return False
    return True


FUNCTIONS: dict[str, Callable] = {
    "toset": lambda items: sorted(set(items), key=str),
    "tolist": list,
    "tomap": dict,
    "concat": lambda *lists: [item for items in lists for item in items],
    "length": len,
    "contains": lambda items, item: item in items,
    "trimsuffix": lambda text, suffix: text[: -len(suffix)] if suffix and text.endswith(suffix) else text,
    "format": lambda spec, *args: spec.replace("%%", "\0") % tuple(args),
    "urlencode": lambda text: urllib.parse.quote(text, safe=""),
    "jsondecode": json.loads,
    "yamldecode": yaml.safe_load,
    "file": lambda path: Path(path).read_text(),
    "fileset": lambda base, pattern: sorted(p.name for p in Path(base).glob(pattern)),
    "keys": lambda mapping: sorted(mapping),
    "values": lambda mapping: [mapping[k] for k in sorted(mapping)],
    "merge": lambda *maps: {k: v for m in maps for k, v in m.items()},
    "lookup": lambda mapping, key, default=None: mapping.get(key, default),
    "join": lambda sep, items: sep.join(items),
    "lower": str.lower,
    "coalesce": lambda *values: next(v for v in values if v not in (None, "")),
    "setproduct": lambda *sets: [list(combination) for combination in __import__("itertools").product(*sets)],
}


class Scope:
    """Names an expression can use; `resolve(name)` answers a root name (var, local, each, a resource type...)."""

    def __init__(self, resolve: Callable[[str], object], extra: dict | None = None) -> None:
        self.resolve_root = resolve
        self.extra = extra or {}

    def child(self, **names) -> Scope:
        return Scope(self.resolve_root, {**self.extra, **names})

    def lookup(self, name: str):
        if name in self.extra:
            return self.extra[name]
        return self.resolve_root(name)


def evaluate(node, scope: Scope):
    kind = node[0]
    if kind == "literal":
        return node[1]
    if kind == "template":
        values = [evaluate(part, scope) for part in node[1]]
        if len(values) == 1 and node[1][0][0] != "literal":
            return values[0]
        return "".join(_text(v) for v in values)
    if kind == "var":
        return scope.lookup(node[1])
    if kind == "attr":
        base = evaluate(node[1], scope)
        if isinstance(base, list) and isinstance(node[2], int):
            return base[node[2]]
        if not isinstance(base, dict) or node[2] not in base:
            raise HclError(f"no attribute {node[2]!r} in {_short(base)}")
        return base[node[2]]
    if kind == "index":
        base = evaluate(node[1], scope)
        index = evaluate(node[2], scope)
        try:
            return base[index]
        except (KeyError, IndexError, TypeError) as missing:
            raise HclError(f"no element {index!r} in {_short(base)}") from missing
    if kind == "call":
        name, args = node[1], node[2]
        if name == "try":
            for arg in args:
                try:
                    return evaluate(arg, scope)
                except HclError:
                    continue
            raise HclError("no try() argument evaluated")
        if name not in FUNCTIONS:
            raise HclError(f"function {name}() not modelled")
        return FUNCTIONS[name](*[evaluate(a, scope) for a in args])
    if kind == "if":
        return evaluate(node[2] if evaluate(node[1], scope) else node[3], scope)
    if kind == "not":
        return not evaluate(node[1], scope)
    if kind == "neg":
        return -evaluate(node[1], scope)
    if kind == "op":
        op, left = node[1], evaluate(node[2], scope)
        if op == "&&":
            return left and evaluate(node[3], scope)
        if op == "||":
            return left or evaluate(node[3], scope)
        right = evaluate(node[3], scope)
        return {
            "==": lambda: left == right,
            "!=": lambda: left != right,
            "<": lambda: left < right,
            ">": lambda: left > right,
            "<=": lambda: left <= right,
            ">=": lambda: left >= right,
            "+": lambda: left + right,
            "-": lambda: left - right,
            "*": lambda: left * right,
            "/": lambda: left / right,
            "%": lambda: left % right,
        }[op]()
    if kind == "list":
        return [evaluate(item, scope) for item in node[1]]
    if kind == "object":
        return {_text(evaluate(k, scope)): evaluate(v, scope) for k, v in node[1]}
    if kind in ("for_list", "for_map"):
        names, source = node[1], evaluate(node[2], scope)
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        results_list, results_map = [], {}
        for first, second in pairs:
            bound = {names[0]: second} if len(names) == 1 else {names[0]: first, names[1]: second}
            inner = scope.child(**bound)
            condition = node[-1]
            if condition is not None and not evaluate(condition, inner):
                continue
            if kind == "for_list":
                results_list.append(evaluate(node[3], inner))
            else:
                results_map[_text(evaluate(node[3], inner))] = evaluate(node[4], inner)
        return results_list if kind == "for_list" else results_map
    raise HclError(f"node {kind}")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) < 120 else text[:120] + "..."
