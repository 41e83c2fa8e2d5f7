"""Stripe-style Idempotency-Key handling for POST endpoints.

The record is inserted in the same transaction as the write it guards, so a failed request leaves
no record (and can be retried with the same key), and a second request with the same key waits on
the unique index until the first commits, then replays its stored response.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ApplicationError, invalid_parameter, missing_parameter
from core.models import ApiKey, IdempotencyRecord

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


def request_fingerprint(*, method: str, path: str, params: dict) -> str:
    canonical = json.dumps({"method": method, "path": path, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise invalid_parameter(IDEMPOTENCY_HEADER, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.")
    return key


def _replay(record: IdempotencyRecord, fingerprint: str) -> StoredResponse:
    if record.request_fingerprint != fingerprint:
        raise ApplicationError(
            status_code=status.HTTP_409_CONFLICT,
            type="idempotency_error",
            code="idempotency_key_reused",
            message="Keys for idempotent requests can only be used with the same parameters they were first used with.",
            param=IDEMPOTENCY_HEADER,
        )
    return StoredResponse(record.response_status, record.response_body, record.response_headers, replayed=True)


@transaction.atomic
def run_idempotently(
    *,
    api_key: ApiKey,
    key: str | None,
    fingerprint: str,
    execute: Callable[[], StoredResponse],
) -> StoredResponse:
    """Run `execute` once per (api key, Idempotency-Key); later calls with the same key replay its response."""
    if key is None:
        return execute()
    # Insert first: a new key (the common case) costs no lookup; a used one fails on the unique index.
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                api_key=api_key, key=key, request_fingerprint=fingerprint, response_status=0, response_body={}
            )
    except IntegrityError:
        # The key was used before, or by a concurrent request that committed while we waited on the index.
        existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
        if existing is not None:
            return _replay(existing, fingerprint)
        raise ApplicationError(
            status_code=status.HTTP_409_CONFLICT,
            type="idempotency_error",
            code="idempotency_key_in_use",
            message="A request with this Idempotency-Key is in progress; retry later.",
            param=IDEMPOTENCY_HEADER,
        ) from None
    response = execute()
    record.response_status = response.status_code
    record.response_body = response.body
    record.response_headers = response.headers
    record.save(update_fields=["response_status", "response_body", "response_headers"])
    return response


def idempotent_response(
    request: Request,
    *,
    params: dict,
    execute: Callable[[], StoredResponse],
    key_required: bool = False,
) -> Response:
    """The view's answer to a POST: `execute` runs once per Idempotency-Key, a repeat replays its response."""
    key = validate_key(request.headers.get(IDEMPOTENCY_HEADER))
    if key is None and key_required:
        raise missing_parameter(IDEMPOTENCY_HEADER, "This endpoint requires an Idempotency-Key header.")
    fingerprint = request_fingerprint(method=request.method, path=request.path, params=params)
    stored = run_idempotently(api_key=request.auth, key=key, fingerprint=fingerprint, execute=execute)
    headers = dict(stored.headers)
    if stored.replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(stored.body, status=stored.status_code, headers=headers)
