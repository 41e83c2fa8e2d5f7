"""Where the contract files are: inside the package in a service's copy, in the repository's contracts/ otherwise."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

_PACKAGED = Path(__file__).resolve().parent / "contracts"
_REPOSITORY = Path(__file__).resolve().parents[2] / "contracts"


def contracts_dir() -> Path:
    """The contracts/ folder: the copy the sync script put beside the package, else the repository's."""
    return _PACKAGED if _PACKAGED.is_dir() else _REPOSITORY


@cache
def load_json(relative: str) -> Any:
    """A contract file parsed once per process, e.g. load_json("saga-log/steps.json")."""
    return json.loads((contracts_dir() / relative).read_text(encoding="utf-8"))
