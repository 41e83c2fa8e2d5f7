from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView

from accounts.views import DepositListCreateView, UserDetailView, UserListCreateView
from core.views import HealthView, ReadyView
from payments.internal import ReconcileView
from payments.push import PubSubPushView
from payments.views import PaymentDetailView, PaymentInitiateView, UserPaymentListView

urlpatterns = [
    path("healthz", HealthView.as_view(), name="healthz"),
    path("readyz", ReadyView.as_view(), name="readyz"),
    path(
        "openapi.json", SpectacularJSONAPIView.as_view(authentication_classes=[], permission_classes=[]), name="openapi"
    ),
    path("users", UserListCreateView.as_view(), name="users"),
    path("users/<int:user_id>", UserDetailView.as_view(), name="user-detail"),
    path("users/<int:user_id>/deposits", DepositListCreateView.as_view(), name="user-deposits"),
    path("users/<int:user_id>/payments", UserPaymentListView.as_view(), name="user-payments"),
    path("initiate-payment", PaymentInitiateView.as_view(), name="initiate-payment"),
    path("payments/<str:payment_id>", PaymentDetailView.as_view(), name="payment-detail"),
    path("pubsub/push", PubSubPushView.as_view(), name="pubsub-push"),
    path("internal/reconcile", ReconcileView.as_view(), name="internal-reconcile"),
    path("admin/", admin.site.urls),
    path("console/", include("console.urls")),
]

handler400 = "core.errors.json_bad_request"
handler404 = "core.errors.json_not_found"
handler500 = "core.errors.json_server_error"
