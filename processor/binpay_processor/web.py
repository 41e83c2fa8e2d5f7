"""What every blueprint answers an error with: `{"error": {"code", "message"}}` and its status."""

from __future__ import annotations

from flask import jsonify


def error_response(status: int, code: str, message: str):
    return jsonify({"error": {"code": code, "message": message}}), status
