"""Google-signed OIDC tokens as DRF authentication, one caller per endpoint.

POST /pubsub/push expects Pub/Sub's token (PUBSUB_PUSH_AUDIENCE, PUBSUB_PUSH_SERVICE_ACCOUNT);
POST /internal/reconcile expects Cloud Scheduler's (RECONCILE_AUDIENCE, RECONCILE_SERVICE_ACCOUNT).
The audiences differ, so neither token opens the other endpoint.

The signature is verified here against Google's certificates, unless BEHIND_CLOUD_RUN_IAM=true: then
the service is private on Cloud Run, which has already checked the signature and the caller's
roles/run.invoker and forwards the token with its signature replaced by SIGNATURE_REMOVED_BY_GOOGLE
(docs/deploy.md, "Push authentication"), so only the claims are left to check. A token that still
carries a signature is verified in full either way.
"""

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from google.auth import exceptions as google_auth_exceptions
from google.auth import jwt
from google.oauth2 import id_token
from rest_framework import authentication, status

from core.errors import ApplicationError
from payments import clients

logger = logging.getLogger(__name__)

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
CLOCK_SKEW_SECONDS = 10


@dataclass(frozen=True)
class GoogleCaller:
    """request.user of a request whose token passed (email None: development, no token checked)."""

    email: str | None

    @property
    def is_authenticated(self) -> bool:
        return True


def _invalid_token() -> ApplicationError:
    return ApplicationError(
        status_code=status.HTTP_401_UNAUTHORIZED,
        type="authentication_error",
        code="push_token_invalid",
        message="The token is invalid.",
    )


class GoogleTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <Google OIDC token>` for `audience_setting`, issued to `service_account_setting`."""

    audience_setting: str
    service_account_setting: str

    def authenticate(self, request):
        claims = self.verify(request.headers.get("Authorization", ""))
        return GoogleCaller(claims["email"]), claims

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="binpay"'

    def verify(self, authorization: str) -> dict:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApplicationError(
                status_code=status.HTTP_401_UNAUTHORIZED,
                type="authentication_error",
                code="push_token_missing",
                message="This endpoint needs a Google-signed OIDC token.",
            )
        if token.rsplit(".", 1)[-1] == SIGNATURE_REMOVED:
            claims = self.claims_checked_by_cloud_run(token)
        else:
            claims = self.verified_claims(token)
        if claims.get("iss") not in GOOGLE_ISSUERS:
            logger.warning("token refused: issuer %s", claims.get("iss"))
            raise _invalid_token()
        expected_account = getattr(settings, self.service_account_setting)
        if claims.get("email") != expected_account or claims.get("email_verified") is not True:
            logger.warning("token refused: issued to %s, not %s", claims.get("email"), expected_account)
            raise ApplicationError(
                status_code=status.HTTP_403_FORBIDDEN,
                type="authentication_error",
                code="push_token_wrong_account",
                message="The token was not issued to the expected service account.",
            )
        return claims

    def verified_claims(self, token: str) -> dict:
        options = {
            "audience": getattr(settings, self.audience_setting),
            "clock_skew_in_seconds": CLOCK_SKEW_SECONDS,
        }
        if settings.PUBSUB_PUSH_CERTS_URL:
            options["certs_url"] = settings.PUBSUB_PUSH_CERTS_URL
        try:
            return id_token.verify_token(token, clients.google_auth_request(), **options)
        except google_auth_exceptions.TransportError as error:
            # The certificates could not be fetched: transient, let the caller retry.
            raise ApplicationError(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                type="api_error",
                code="token_verification_unavailable",
                message=f"Could not fetch the token certificates: {error}",
            ) from None
        except (ValueError, google_auth_exceptions.GoogleAuthError) as error:
            logger.warning("token refused: %s", error)
            raise _invalid_token() from None

    def claims_checked_by_cloud_run(self, token: str) -> dict:
        if not settings.BEHIND_CLOUD_RUN_IAM:
            # Nobody checked this signature: only Cloud Run's IAM may vouch for a stripped token.
            logger.warning("token refused: signature removed by Cloud Run, and BEHIND_CLOUD_RUN_IAM is not set")
            raise _invalid_token()
        try:
            claims = jwt.decode(token, verify=False)
        except (ValueError, google_auth_exceptions.GoogleAuthError) as error:
            logger.warning("token refused: undecodable: %s", error)
            raise _invalid_token() from None
        now = time.time()
        expires, issued = claims.get("exp"), claims.get("iat")
        if claims.get("aud") != getattr(settings, self.audience_setting):
            logger.warning("token refused: audience %s", claims.get("aud"))
            raise _invalid_token()
        if not isinstance(expires, int | float) or not isinstance(issued, int | float):
            raise _invalid_token()
        if expires + CLOCK_SKEW_SECONDS < now or issued - CLOCK_SKEW_SECONDS > now:
            logger.warning("token refused: expired or not yet valid")
            raise _invalid_token()
        return claims


class PubSubPushAuthentication(GoogleTokenAuthentication):
    """Pub/Sub push: verified when PUBSUB_PUSH_AUDIENCE is set; the emulator sends no token in development."""

    audience_setting = "PUBSUB_PUSH_AUDIENCE"
    service_account_setting = "PUBSUB_PUSH_SERVICE_ACCOUNT"

    def authenticate(self, request):
        if settings.PUBSUB_PUSH_AUDIENCE:
            return super().authenticate(request)
        if settings.IS_PRODUCTION:
            # Fail closed: a forged outcome would capture or release funds.
            raise ApplicationError(
                status_code=status.HTTP_403_FORBIDDEN,
                type="authentication_error",
                code="push_auth_not_configured",
                message="Push delivery needs PUBSUB_PUSH_AUDIENCE in production.",
            )
        return GoogleCaller(None), None


class SchedulerAuthentication(GoogleTokenAuthentication):
    """Cloud Scheduler's call of POST /internal/reconcile (used when RECONCILE_AUDIENCE is set)."""

    audience_setting = "RECONCILE_AUDIENCE"
    service_account_setting = "RECONCILE_SERVICE_ACCOUNT"


class GoogleTokenScheme(OpenApiAuthenticationExtension):
    target_class = "payments.authentication.GoogleTokenAuthentication"
    match_subclasses = True
    name = "GoogleOidcToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Google-signed OIDC token for this endpoint's audience (Pub/Sub push, Cloud Scheduler).",
        }
