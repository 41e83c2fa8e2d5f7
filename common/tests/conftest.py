"""Fixtures: the real Firestore emulator (started once per session unless FIRESTORE_EMULATOR_HOST is set)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "devtools"))

import emulators  # noqa: E402

PROJECT_ID = "binpay-common-tests"


@pytest.fixture(scope="session")
def firestore_client() -> Iterator:
    running = None
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        running = emulators.start(project_id=PROJECT_ID)
        os.environ.update(running.env())
    from google.cloud import firestore

    client = firestore.Client(project=os.environ.get("PROJECT_ID", PROJECT_ID))
    try:
        yield client
    finally:
        client.close()
        if running is not None:
            running.stop()


@pytest.fixture
def collection() -> str:
    """A collection of its own per test, so tests never see each other's documents."""
    return f"transactions-{uuid.uuid4().hex[:12]}"
