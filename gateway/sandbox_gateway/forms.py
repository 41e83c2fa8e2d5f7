"""Stripe's v1 request encoding: form fields with bracket notation, and typed reads of them.

The official SDK sends ``metadata[payment_id]=x``, lists as ``enabled_events[0]=a`` and
booleans as ``true``/``false`` (stripe/_encode.py ``_api_encode``); query strings use the same
notation (``created[gte]=...``). Each parameter appears once; a repeated one is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import errors

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
MAX_INTEGER = 99_999_999_999


def nest(pairs: Iterable[tuple[str, str]]) -> dict:
    """``[("metadata[a]", "1"), ("x[0]", "y")]`` -> ``{"metadata": {"a": "1"}, "x": ["y"]}``."""
    root: dict = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if match is None:
            raise errors.invalid_param(f"Invalid parameter name: {raw_key}", raw_key)
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for index, part in enumerate(path):
            last = index == len(path) - 1
            if part == "":  # "a[]": append
                part = str(sum(1 for key in node if key.isdigit()))
            if last:
                if part in node:
                    raise errors.invalid_param(f"Received the parameter {raw_key} more than once.", raw_key)
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise errors.invalid_param(f"Invalid parameter: {raw_key}", raw_key)
                node = child
    return _lists(root)


def _lists(node):
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


class Params:
    """The parameters of one request; every read marks its name known, ``finish`` refuses the rest."""

    def __init__(self, values: dict) -> None:
        self._values = values
        self._read: set[str] = set()

    @property
    def values(self) -> dict:
        return self._values

    def raw(self, name: str) -> object:
        self._read.add(name)
        return self._values.get(name)

    def string(self, name: str, *, required: bool = False, max_length: int = 5000) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                raise errors.missing_param(name)
            return None
        if not isinstance(value, str):
            raise errors.invalid_param(f"Invalid string: {name}", name)
        if len(value) > max_length:
            raise errors.invalid_param(f"{name} must be at most {max_length} characters.", name)
        return value

    def integer(self, name: str, *, required: bool = False, minimum: int = 0) -> int | None:
        value = self.string(name, required=required)
        if value is None:
            return None
        if not re.fullmatch(r"-?\d+", value) or abs(int(value)) > MAX_INTEGER:
            raise errors.invalid_param(f"Invalid integer: {value}", name, "parameter_invalid_integer")
        if int(value) < minimum:
            raise errors.invalid_param(
                f"This value must be greater than or equal to {minimum}.", name, "parameter_invalid_integer"
            )
        return int(value)

    def boolean(self, name: str) -> bool | None:
        value = self.string(name)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise errors.invalid_param(f"Invalid boolean: {value}", name)
        return value == "true"

    def choice(self, name: str, allowed: tuple[str, ...]) -> str | None:
        value = self.string(name)
        if value is not None and value not in allowed:
            raise errors.invalid_param(f"Invalid {name}: must be one of {', '.join(allowed)}", name)
        return value

    def mapping(self, name: str) -> dict | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        if not isinstance(value, dict):
            raise errors.invalid_param(f"Invalid object: {name}", name)
        return value

    def string_list(self, name: str) -> list[str] | None:
        value = self.raw(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise errors.invalid_param(f"Invalid array: {name}", name)
        return value

    def metadata(self) -> dict[str, str] | None:
        """Stripe's metadata rules: up to 50 keys, keys up to 40 characters, values up to 500."""
        value = self.mapping("metadata")
        if value is None:
            return None
        if len(value) > 50:
            raise errors.invalid_param("You can specify up to 50 keys in metadata.", "metadata")
        for key, item in value.items():
            if not isinstance(item, str):
                raise errors.invalid_param(f"Invalid value for metadata[{key}].", f"metadata[{key}]")
            if len(key) > 40:
                raise errors.invalid_param("Metadata keys can be at most 40 characters long.", f"metadata[{key}]")
            if len(item) > 500:
                raise errors.invalid_param("Metadata values can be at most 500 characters long.", f"metadata[{key}]")
        return {key: item for key, item in value.items() if item != ""}

    def finish(self) -> None:
        """400 parameter_unknown for the first parameter the endpoint did not read."""
        for name in self._values:
            if name not in self._read:
                raise errors.unknown_param(name)
