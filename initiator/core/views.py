import functools
import logging

from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class HealthView(APIView):
    """The process is up (liveness)."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="healthz",
        responses=inline_serializer("Health", {"status": serializers.CharField()}),
    )
    def get(self, request):
        return Response({"status": "ok"})


class ReadyView(APIView):
    """The database answers (readiness)."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="readyz",
        responses={
            (200, "application/json"): inline_serializer(
                "Readiness",
                {"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField())},
            ),
            (503, "application/json"): inline_serializer(
                "ReadinessFailed",
                {"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField())},
            ),
        },
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except Exception as error:
            logger.warning("readiness check failed: database: %s", error)
            return Response({"status": "unavailable", "checks": {"database": "unreachable"}}, status=503)
        return Response({"status": "ok", "checks": {"database": "ok"}})


@functools.cache
def _openapi_document() -> bytes:
    return (settings.BASE_DIR / "openapi.json").read_bytes()


def openapi_document(request) -> HttpResponse:
    """GET /openapi.json: the committed document (generated from the code; a test fails while it is stale),
    read once per process rather than generated per request."""
    response = HttpResponse(_openapi_document(), content_type="application/json")
    response["Cache-Control"] = "public, max-age=300"
    return response
