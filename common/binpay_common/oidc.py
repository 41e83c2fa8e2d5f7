"""Who may call an endpoint that Google calls (Pub/Sub push, Cloud Scheduler): a Google-signed OIDC
token for one audience, issued to one service account.

Where the token is read, and who checked its signature (ExpectedCaller.behind_cloud_run_iam):
- false (the default): `Authorization: Bearer <token>`, its signature verified here against Google's
  certificates (or the configured certs URL, which tests serve themselves).
- true: the service is private on Cloud Run. Cloud Run has checked the caller's token (signature,
  roles/run.invoker) and passes it on with the signature replaced by SIGNATURE_REMOVED_BY_GOOGLE
  (https://cloud.google.com/run/docs/troubleshooting#signature-removed), so only the claims are left
  to check. Cloud Run checks `X-Serverless-Authorization` when a request carries it and then passes
  `Authorization` on untouched, unchecked
  (https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token). So the token
  is read from `X-Serverless-Authorization` when present and from `Authorization` only otherwise:
  a principal allowed to invoke the service cannot put a hand-written push-account token in
  `Authorization` beside its own. A token that still carries a signature is verified in full.
  This follows Cloud Run's documentation; nothing here can observe Cloud Run itself.
Either way the claims must say: issuer Google, this audience, not expired, issued to the expected
service account with a verified email.

A token is looked at before anything is fetched: one that is not a JWT, names no key, or carries the
wrong audience or issuer or an expired time is refused without a request to Google. Certificates are
kept as long as their Cache-Control allows (Google: "use the Cache-Control header in the response to
determine when you should retrieve them again",
https://developers.google.com/identity/sign-in/web/backend-auth), and fetched again early, at most
once a minute, when a token names a key they lack (Google rotates its keys).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from cachecontrol import CacheControl
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

logger = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
AUTHORIZATION = "Authorization"
SERVERLESS_AUTHORIZATION = "X-Serverless-Authorization"
CLOCK_SKEW_SECONDS = 10


@dataclass(frozen=True)
class ExpectedCaller:
    audience: str
    service_account: str
    certs_url: str | None = None
    behind_cloud_run_iam: bool = False


class Refusal(enum.Enum):
    """Why a request was refused; each service names its own error code for each."""

    MISSING = "missing"
    INVALID = "invalid"
    WRONG_ACCOUNT = "wrong_account"
    UNAVAILABLE = "unavailable"


_STATUS_AND_MESSAGE = {
    Refusal.MISSING: (401, "This endpoint needs a Google-signed OIDC token."),
    Refusal.INVALID: (401, "The token is invalid."),
    Refusal.WRONG_ACCOUNT: (403, "The token was not issued to the expected service account."),
    Refusal.UNAVAILABLE: (503, "The token certificates could not be fetched; try again."),
}


class TokenRefused(Exception):
    """The request does not carry an acceptable token: `status` 401 (who are you), 403 (not you) or
    503 (could not tell: the certificates could not be fetched)."""

    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal
        self.status, self.message = _STATUS_AND_MESSAGE[refusal]
        super().__init__(self.message)


class CertificatesUnavailable(Exception):
    """The certificates could not be fetched or read: transient, the caller should retry."""


class GoogleCertificates:
    """Token-signing certificates by URL, kept as long as the endpoint's Cache-Control allows."""

    REFRESH_INTERVAL_SECONDS = 60
    TIMEOUT_SECONDS = 10

    def __init__(self) -> None:
        self._session = CacheControl(requests.Session())
        # One fetch at a time: a burst of pushes on an empty cache makes one request, not one each.
        self._lock = threading.Lock()
        self._refreshed_at: dict[str, float] = {}

    def certificate(self, url: str, key_id: str) -> str | None:
        """The PEM certificate of `key_id`, or None when the endpoint does not list it."""
        with self._lock:
            certificates = self._fetch(url, refresh=False)
            if key_id not in certificates and self._may_refresh(url):
                certificates = self._fetch(url, refresh=True)
        certificate = certificates.get(key_id)
        return certificate if isinstance(certificate, str) else None

    def _may_refresh(self, url: str) -> bool:
        now = time.monotonic()
        if now - self._refreshed_at.get(url, float("-inf")) < self.REFRESH_INTERVAL_SECONDS:
            return False
        self._refreshed_at[url] = now
        return True

    def _fetch(self, url: str, *, refresh: bool) -> dict:
        headers = {"Cache-Control": "no-cache"} if refresh else None
        try:
            response = self._session.get(url, headers=headers, timeout=self.TIMEOUT_SECONDS)
            response.raise_for_status()
            certificates = response.json()
        except (requests.RequestException, ValueError) as error:
            raise CertificatesUnavailable(f"{url}: {error}") from error
        if not isinstance(certificates, dict):
            raise CertificatesUnavailable(f"{url}: not a mapping of key ids to certificates")
        return certificates


certificates = GoogleCertificates()


def verify_caller(headers: Mapping[str, str], expected: ExpectedCaller) -> dict:
    """The claims of the token the request carries (see the module docstring), or TokenRefused."""
    header = AUTHORIZATION
    if expected.behind_cloud_run_iam and headers.get(SERVERLESS_AUTHORIZATION):
        header = SERVERLESS_AUTHORIZATION
    scheme, _, token = (headers.get(header) or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenRefused(Refusal.MISSING)
    token_header, claims = _unverified(token)
    _check_claims(claims, expected)
    if token.rsplit(".", 1)[-1] == SIGNATURE_REMOVED:
        if not expected.behind_cloud_run_iam:
            # Nobody checked this signature: only Cloud Run's IAM may vouch for a stripped token.
            logger.warning("token refused: signature removed by Cloud Run, and BEHIND_CLOUD_RUN_IAM is not set")
            raise TokenRefused(Refusal.INVALID)
    else:
        claims = _verified_claims(token, token_header, expected)
    if claims.get("email") != expected.service_account or claims.get("email_verified") is not True:
        logger.warning("token refused: issued to %s, not %s", claims.get("email"), expected.service_account)
        raise TokenRefused(Refusal.WRONG_ACCOUNT)
    return claims


def _unverified(token: str) -> tuple[dict, dict]:
    segments = token.split(".")
    if len(segments) != 3:
        logger.warning("token refused: not a JWT")
        raise TokenRefused(Refusal.INVALID)
    try:
        header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in segments[:2])
    except (binascii.Error, ValueError):
        logger.warning("token refused: undecodable")
        raise TokenRefused(Refusal.INVALID) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenRefused(Refusal.INVALID)
    return header, claims


def _check_claims(claims: dict, expected: ExpectedCaller) -> None:
    """What needs no signature to check: audience, issuer, times."""
    if claims.get("aud") != expected.audience:
        logger.warning("token refused: audience %s", claims.get("aud"))
        raise TokenRefused(Refusal.INVALID)
    if claims.get("iss") not in GOOGLE_ISSUERS:
        logger.warning("token refused: issuer %s", claims.get("iss"))
        raise TokenRefused(Refusal.INVALID)
    expires, issued = claims.get("exp"), claims.get("iat")
    if not isinstance(expires, int | float) or not isinstance(issued, int | float):
        raise TokenRefused(Refusal.INVALID)
    now = time.time()
    if expires + CLOCK_SKEW_SECONDS < now or issued - CLOCK_SKEW_SECONDS > now:
        logger.warning("token refused: expired or not yet valid")
        raise TokenRefused(Refusal.INVALID)


def _verified_claims(token: str, token_header: dict, expected: ExpectedCaller) -> dict:
    key_id = token_header.get("kid")
    if token_header.get("alg") != "RS256" or not isinstance(key_id, str):
        logger.warning("token refused: algorithm %s, key id %s", token_header.get("alg"), key_id)
        raise TokenRefused(Refusal.INVALID)
    try:
        certificate = certificates.certificate(expected.certs_url or GOOGLE_CERTS_URL, key_id)
    except CertificatesUnavailable as error:
        logger.error("token not checked: %s", error)
        raise TokenRefused(Refusal.UNAVAILABLE) from None
    if certificate is None:
        logger.warning("token refused: no certificate for key id %s", key_id)
        raise TokenRefused(Refusal.INVALID)
    try:
        return jwt.decode(
            token, certs={key_id: certificate}, audience=expected.audience, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
    except (ValueError, auth_exceptions.GoogleAuthError) as error:
        logger.warning("token refused: %s", error)
        raise TokenRefused(Refusal.INVALID) from None
