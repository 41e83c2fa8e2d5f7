"""Who may call POST /pubsub/push: a Google-signed OIDC token for one audience and one service account.

Two ways the signature is checked (BEHIND_CLOUD_RUN_IAM):
- false (default): here, against Google's certificates (or PUBSUB_PUSH_CERTS_URL in tests).
- true: the service is private on Cloud Run (no allUsers invoker). Cloud Run has already checked
  the token's signature and the caller's roles/run.invoker, and hands the request on with the
  signature replaced by SIGNATURE_REMOVED_BY_GOOGLE (docs/deploy.md, "Push authentication"), so
  only the claims are checked here. A token that still carries a signature is verified in full.
Either way the claims must say: issuer Google, this audience, not expired, issued to the expected
service account with a verified email.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import requests
from google.auth import exceptions as auth_exceptions
from google.auth import jwt
from google.auth.transport import requests as auth_requests
from google.oauth2 import id_token

logger = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
CLOCK_SKEW_SECONDS = 10


@dataclass(frozen=True)
class ExpectedCaller:
    audience: str
    service_account: str
    certs_url: str | None = None
    behind_cloud_run_iam: bool = False


class TokenRefused(Exception):
    """The request does not carry an acceptable token; `status` is 401 (who are you) or 403 (not you)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _CachingRequest(auth_requests.Request):
    """Fetches Google's (or the configured) signing certificates at most every few minutes, not per push."""

    TTL_SECONDS = 300

    def __init__(self) -> None:
        super().__init__(session=requests.Session())
        self._cache: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def __call__(self, url, method="GET", body=None, headers=None, timeout=10, **kwargs):
        if method != "GET":
            return super().__call__(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        with self._lock:
            cached = self._cache.get(url)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        response = super().__call__(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        if response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic() + self.TTL_SECONDS, response)
        return response


_certs_request = _CachingRequest()


def verify_caller(authorization: str, expected: ExpectedCaller) -> dict:
    """The token's claims, or TokenRefused."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenRefused(401, "unauthenticated", "missing bearer token")
    if token.rsplit(".", 1)[-1] == SIGNATURE_REMOVED:
        if not expected.behind_cloud_run_iam:
            logger.warning(
                "token refused: Cloud Run removed its signature; set BEHIND_CLOUD_RUN_IAM=true on a private service"
            )
            raise TokenRefused(401, "unauthenticated", "invalid token")
        claims = _claims_checked_by_cloud_run(token, expected.audience)
    else:
        claims = _verified_claims(token, expected)
    if claims.get("iss") not in GOOGLE_ISSUERS:
        logger.warning("token refused: issuer %s", claims.get("iss"))
        raise TokenRefused(401, "unauthenticated", "invalid token")
    if claims.get("email") != expected.service_account or claims.get("email_verified") is not True:
        logger.warning("token refused: issued to %s, not %s", claims.get("email"), expected.service_account)
        raise TokenRefused(403, "forbidden", "token is not from the expected service account")
    return claims


def _verified_claims(token: str, expected: ExpectedCaller) -> dict:
    options = {"audience": expected.audience, "clock_skew_in_seconds": CLOCK_SKEW_SECONDS}
    if expected.certs_url:
        options["certs_url"] = expected.certs_url
    try:
        return id_token.verify_token(token, _certs_request, **options)
    except (ValueError, auth_exceptions.GoogleAuthError) as error:
        logger.warning("token refused: %s", error)
        raise TokenRefused(401, "unauthenticated", "invalid token") from None


def _claims_checked_by_cloud_run(token: str, audience: str) -> dict:
    """Cloud Run verified the signature; what is left to check is what it does not know we expect."""
    try:
        claims = jwt.decode(token, verify=False)
    except (ValueError, auth_exceptions.GoogleAuthError) as error:
        logger.warning("token refused: undecodable: %s", error)
        raise TokenRefused(401, "unauthenticated", "invalid token") from None
    now = time.time()
    expires, issued = claims.get("exp"), claims.get("iat")
    if claims.get("aud") != audience:
        logger.warning("token refused: audience %s", claims.get("aud"))
        raise TokenRefused(401, "unauthenticated", "invalid token")
    if not isinstance(expires, int | float) or not isinstance(issued, int | float):
        raise TokenRefused(401, "unauthenticated", "invalid token")
    if expires + CLOCK_SKEW_SECONDS < now or issued - CLOCK_SKEW_SECONDS > now:
        logger.warning("token refused: expired or not yet valid")
        raise TokenRefused(401, "unauthenticated", "invalid token")
    return claims
