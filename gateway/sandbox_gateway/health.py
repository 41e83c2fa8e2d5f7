"""Liveness and readiness probes (no auth: the platform calls them)."""

from __future__ import annotations

import logging
import sqlite3

from flask import Blueprint, Response, jsonify

from .web import engine

health = Blueprint("health", __name__)
logger = logging.getLogger(__name__)


@health.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz() -> tuple[Response, int]:
    try:
        engine().store.check()
    except sqlite3.Error as error:
        logger.error("readiness check failed: sqlite", extra={"error": str(error)})
        return jsonify({"status": "unavailable", "checks": {"sqlite": f"error: {error}"}}), 503
    return jsonify({"status": "ok", "checks": {"sqlite": "ok"}}), 200
