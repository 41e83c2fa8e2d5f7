"""Google-signed OIDC tokens as DRF authentication, one caller per endpoint.

POST /pubsub/push expects Pub/Sub's token (PUBSUB_PUSH_AUDIENCE, PUBSUB_PUSH_SERVICE_ACCOUNT);
POST /internal/reconcile expects Cloud Scheduler's (RECONCILE_AUDIENCE, RECONCILE_SERVICE_ACCOUNT).
The audiences differ, so neither token opens the other endpoint. The check itself, and what
BEHIND_CLOUD_RUN_IAM changes (which header counts, whose signature check is trusted), is
binpay_common/oidc.py, shared with the processor.
"""

from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, status

from binpay_common.oidc import ExpectedCaller, Refusal, TokenRefused, verify_caller
from core.errors import ApplicationError

# The initiator's error type and code for each reason a token is refused.
_REFUSALS = {
    Refusal.MISSING: ("authentication_error", "push_token_missing"),
    Refusal.INVALID: ("authentication_error", "push_token_invalid"),
    Refusal.WRONG_ACCOUNT: ("authentication_error", "push_token_wrong_account"),
    Refusal.UNAVAILABLE: ("api_error", "token_verification_unavailable"),
}


@dataclass(frozen=True)
class GoogleCaller:
    """request.user of a request whose token passed (email None: development, no token checked)."""

    email: str | None

    @property
    def is_authenticated(self) -> bool:
        return True


class GoogleTokenAuthentication(authentication.BaseAuthentication):
    """A Google OIDC token for `audience_setting`, issued to `service_account_setting`."""

    audience_setting: str
    service_account_setting: str

    def authenticate(self, request):
        expected = ExpectedCaller(
            audience=getattr(settings, self.audience_setting),
            service_account=getattr(settings, self.service_account_setting),
            certs_url=settings.PUBSUB_PUSH_CERTS_URL or None,
            behind_cloud_run_iam=settings.BEHIND_CLOUD_RUN_IAM,
        )
        try:
            claims = verify_caller(request.headers, expected)
        except TokenRefused as refused:
            error_type, code = _REFUSALS[refused.refusal]
            raise ApplicationError(
                status_code=refused.status, type=error_type, code=code, message=refused.message
            ) from None
        return GoogleCaller(claims["email"]), claims

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="binpay"'


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
