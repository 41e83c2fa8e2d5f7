"""Helpers shared by the API views."""

from collections.abc import Callable

from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import missing_parameter
from core.idempotency import (
    IDEMPOTENCY_HEADER,
    StoredResponse,
    request_fingerprint,
    run_idempotently,
    validate_key,
)


def idempotent_response(
    request: Request,
    *,
    params: dict,
    execute: Callable[[], StoredResponse],
    key_required: bool = False,
) -> Response:
    key = validate_key(request.headers.get(IDEMPOTENCY_HEADER))
    if key is None and key_required:
        raise missing_parameter(IDEMPOTENCY_HEADER, "This endpoint requires an Idempotency-Key header.")
    fingerprint = request_fingerprint(method=request.method, path=request.path, params=params)
    stored = run_idempotently(api_key=request.auth, key=key, fingerprint=fingerprint, execute=execute)
    headers = dict(stored.headers)
    if stored.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(stored.body, status=stored.status_code, headers=headers)
