"""POST /internal/reconcile: one reconciler pass, for Cloud Scheduler."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.serializers import ErrorSerializer
from payments.push import verify_push_token
from payments.reconciler import Result, reconcile

ReconcileSummary = inline_serializer(
    "ReconcileSummary",
    {name: serializers.IntegerField() for name in ("examined", *(result.value for result in Result))},
)


class ReconcileView(APIView):
    """Authenticated like /pubsub/push (OIDC) when PUBSUB_PUSH_AUDIENCE is set, else with an API key."""

    def get_authenticators(self):
        return [] if settings.PUBSUB_PUSH_AUDIENCE else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if settings.PUBSUB_PUSH_AUDIENCE else [IsAuthenticated()]

    @extend_schema(
        operation_id="internal_reconcile",
        description="One pass of the reconciler over payments pending longer than PAYMENT_TIMEOUT_SECONDS.",
        request=None,
        responses={200: ReconcileSummary, 401: ErrorSerializer, 403: ErrorSerializer, 503: ErrorSerializer},
    )
    def post(self, request):
        if settings.PUBSUB_PUSH_AUDIENCE:
            verify_push_token(request.headers.get("Authorization", ""))
        return Response(reconcile(older_than_seconds=settings.PAYMENT_TIMEOUT_SECONDS))
