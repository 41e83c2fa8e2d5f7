"""POST /internal/reconcile: one reconciler pass, for Cloud Scheduler."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.serializers import ErrorSerializer
from payments.authentication import SchedulerAuthentication
from payments.reconciler import Result, reconcile

ReconcileSummary = inline_serializer(
    "ReconcileSummary",
    {name: serializers.IntegerField() for name in ("examined", *(result.value for result in Result))},
)


class ReconcileView(APIView):
    """Cloud Scheduler's OIDC token when RECONCILE_AUDIENCE is set, else an API key with ops:reconcile."""

    required_scopes = ("ops:reconcile",)  # core.models.SCOPE_OPS_RECONCILE: never a user-bound key's

    def get_authenticators(self):
        if settings.RECONCILE_AUDIENCE:
            return [SchedulerAuthentication()]
        return super().get_authenticators()

    def get_permissions(self):
        if settings.RECONCILE_AUDIENCE:
            # The token named the scheduler's service account; API-key scopes do not apply to it.
            return [IsAuthenticated()]
        return super().get_permissions()

    @extend_schema(
        operation_id="internal_reconcile",
        description="One pass of the reconciler over payments pending longer than PAYMENT_TIMEOUT_SECONDS.",
        request=None,
        responses={200: ReconcileSummary, 401: ErrorSerializer, 403: ErrorSerializer, 503: ErrorSerializer},
    )
    def post(self, request):
        return Response(reconcile(older_than_seconds=settings.PAYMENT_TIMEOUT_SECONDS))
