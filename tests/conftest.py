"""Shared by the cross-service suites: devtools/ on sys.path and one set of emulators per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "devtools"))

import emulators  # noqa: E402


@pytest.fixture(scope="session")
def emulator_env():
    """The emulators' hosts: the caller's when PUBSUB_/FIRESTORE_EMULATOR_HOST are set, else our own.

    Exported to os.environ too: the tests' own Pub/Sub and Firestore clients talk to them.
    """
    if os.environ.get("PUBSUB_EMULATOR_HOST") and os.environ.get("FIRESTORE_EMULATOR_HOST"):
        yield {}
        return
    running = emulators.start()
    hosts = {k: v for k, v in running.env().items() if k.endswith("_HOST")}
    os.environ.update(hosts)
    try:
        yield hosts
    finally:
        for key in hosts:
            os.environ.pop(key, None)
        running.stop()
