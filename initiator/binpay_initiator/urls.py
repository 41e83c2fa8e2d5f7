from django.contrib import admin
from django.urls import include, path, register_converter
from django.views.decorators.http import require_safe

from accounts.views import DepositListCreateView, UserDetailView, UserListCreateView, UserPaymentMethodView
from core.views import HealthView, ReadyView, openapi_document
from payments.internal import ReconcileView
from payments.push import PubSubPushView
from payments.views import PaymentDetailView, PaymentInitiateView, ProviderWebhookView, UserPaymentListView


class DatabaseIdConverter:
    """Like <int:...>, but no longer than a bigint can be: a longer id is an unknown URL (404), not a
    database overflow."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(DatabaseIdConverter, "id")

urlpatterns = [
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
    path("openapi.json", require_safe(openapi_document), name="openapi"),
    path("users", UserListCreateView.as_view(), name="users"),
    path("users/<id:user_id>", UserDetailView.as_view(), name="user-detail"),
    path("users/<id:user_id>/payment-method", UserPaymentMethodView.as_view(), name="user-payment-method"),
    path("users/<id:user_id>/deposits", DepositListCreateView.as_view(), name="user-deposits"),
    path("users/<id:user_id>/payments", UserPaymentListView.as_view(), name="user-payments"),
    path("initiate-payment", PaymentInitiateView.as_view(), name="initiate-payment"),
    path("payments/<str:payment_id>", PaymentDetailView.as_view(), name="payment-detail"),
    path("pubsub/push", PubSubPushView.as_view(), name="pubsub-push"),
    path("webhooks/stripe", ProviderWebhookView.as_view(), name="provider-webhook"),
    path("internal/reconcile", ReconcileView.as_view(), name="internal-reconcile"),
    path("admin/", admin.site.urls),
    path("console/", include("console.urls")),
]

handler400 = "core.errors.json_bad_request"
handler404 = "core.errors.json_not_found"
handler500 = "core.errors.json_server_error"
