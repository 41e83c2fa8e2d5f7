"""Rate limits shared by every instance, kept in the database (issue 22, M4; docs/security.md).

Budgets, each "N/S" (N requests per S seconds) from the environment, "0" = none:
- per API key (the SHA-256 of the presented bearer token, so unknown keys count too) and per client
  address, each with a read budget (GET, HEAD) and a write budget (everything else);
- login (POST /console/login/, /admin/login/): per client address and per submitted username.
Pub/Sub's pushes (OIDC-authenticated, retried by Pub/Sub), probes and static files are not limited.

Each budget is a sliding window (the current fixed window's count plus the previous one's, weighted by
how much of it still overlaps): one multi-row UPSERT per request, ON CONFLICT on the bucket's primary
key, RETURNING the counts, in PostgreSQL as in SQLite. A request over any budget is answered 429 with
Retry-After and the API's error body; the counts are kept even then, so a client that keeps hammering
stays limited.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)

READ_METHODS = ("GET", "HEAD", "OPTIONS")
LOGIN_PATHS = ("/console/login/", "/admin/login/")
UNLIMITED_PREFIXES = ("/healthz", "/readyz", "/pubsub/push", "/static/")


class RateLimitConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Budget:
    limit: int
    period: int  # seconds

    @classmethod
    def parse(cls, name: str, raw: str) -> Budget | None:
        """ "100/1" → 100 per second; "0" or "off" → no budget."""
        raw = raw.strip().lower()
        if raw in ("0", "off", ""):
            return None
        count, _, seconds = raw.partition("/")
        try:
            budget = cls(int(count), int(seconds or "1"))
        except ValueError:
            raise RateLimitConfigError(f"{name} must be N/SECONDS (e.g. 100/1) or 0, got {raw!r}") from None
        if budget.limit < 1 or budget.period < 1:
            raise RateLimitConfigError(f"{name} must be N/SECONDS with N and SECONDS at least 1, got {raw!r}")
        return budget


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    bucket: str = ""


def client_address(request) -> str:
    """REMOTE_ADDR, or the address TRUSTED_PROXY_HOPS proxies of our own put in X-Forwarded-For (each
    appends the address it received from; the ones before it are the client's to forge)."""
    hops = settings.TRUSTED_PROXY_HOPS
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]


def buckets_for(request) -> list[tuple[str, Budget]]:
    """The budgets this request counts against, as (bucket id, budget)."""
    path, budgets = request.path_info, settings.RATE_LIMITS
    if path.startswith(UNLIMITED_PREFIXES):
        return []
    address = client_address(request)
    if request.method == "POST" and path in LOGIN_PATHS:
        chosen = [(f"login:ip:{_digest(address)}", budgets["login"])]
        username = request.POST.get("username", "")
        if username:
            chosen.append((f"login:user:{_digest(username.strip().lower())}", budgets["login"]))
        return [(bucket, budget) for bucket, budget in chosen if budget]
    kind = "read" if request.method in READ_METHODS else "write"
    chosen = [(f"ip:{kind}:{_digest(address)}", budgets[f"address_{kind}"])]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():  # core.auth.ApiKeyAuthentication's scheme
        chosen.append((f"key:{kind}:{_digest(token.strip())}", budgets[f"key_{kind}"]))
    return [(bucket, budget) for bucket, budget in chosen if budget]


_UPSERT = """
INSERT INTO core_ratelimitbucket AS b (bucket, window_index, hits, prev_hits, period_seconds)
VALUES {rows}
ON CONFLICT (bucket) DO UPDATE SET
    prev_hits = CASE
        WHEN b.window_index = excluded.window_index THEN b.prev_hits
        WHEN b.window_index = excluded.window_index - 1 THEN b.hits
        ELSE 0 END,
    hits = CASE WHEN b.window_index = excluded.window_index THEN b.hits + 1 ELSE 1 END,
    window_index = excluded.window_index,
    period_seconds = excluded.period_seconds
RETURNING bucket, hits, prev_hits
"""


def check(chosen: list[tuple[str, Budget]], now: float | None = None) -> Verdict:
    """Count one request against each budget (one statement); the first budget it exceeds, if any."""
    if not chosen:
        return Verdict(True)
    now = time.time() if now is None else now
    parameters: list[object] = []
    for bucket, budget in chosen:
        parameters += [bucket, int(now // budget.period), 1, 0, budget.period]
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(chosen))
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(rows=rows), parameters)
        counts = {bucket: (hits, prev_hits) for bucket, hits, prev_hits in cursor.fetchall()}
    for bucket, budget in chosen:
        hits, prev_hits = counts[bucket]
        elapsed = (now % budget.period) / budget.period
        if prev_hits * (1 - elapsed) + hits > budget.limit:
            return Verdict(False, _retry_after(budget, hits, prev_hits, elapsed), bucket)
    return Verdict(True)


def _retry_after(budget: Budget, hits: int, prev_hits: int, elapsed: float) -> int:
    """Seconds until the sliding count is back under the limit, if no request comes meanwhile."""
    if hits > budget.limit or prev_hits == 0:
        wait = (1 - elapsed) * budget.period  # the current window must end
    else:
        # prev_hits * (1 - f) + hits <= limit  →  f >= 1 - (limit - hits) / prev_hits
        wait = max(0.0, 1 - (budget.limit - hits) / prev_hits - elapsed) * budget.period
    return max(1, math.ceil(wait))


def too_many_requests(retry_after: int) -> JsonResponse:
    body = {
        "error": {
            "type": "rate_limit_error",
            "code": "rate_limit",
            "message": "Too many requests: retry after the number of seconds in Retry-After.",
            "param": None,
        }
    }
    response = JsonResponse(body, status=429)
    response["Retry-After"] = str(retry_after)
    return response


class RateLimitMiddleware:
    """Answer 429 before the view when a budget is spent. A database error lets the request through
    (the view will meet the same database and answer for itself)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if settings.RATE_LIMIT_ENABLED:
            try:
                verdict = check(buckets_for(request))
            except DatabaseError as error:
                logger.warning("rate limits not checked: %s", error)
                verdict = Verdict(True)
            if not verdict.allowed:
                logger.info(
                    "rate limited: %s (retry after %s s)", verdict.bucket.split(":", 2)[:2], verdict.retry_after
                )
                return too_many_requests(verdict.retry_after)
        return self.get_response(request)
