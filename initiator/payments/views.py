import logging

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.services import require_supported_currency
from binpay_common.gateway import WebhookInvalid
from binpay_common.logs import payment_id_var
from core.api import (
    FORM_OR_JSON,
    LIMIT_PARAMETER,
    ApiView,
    errors,
    idempotency_parameter,
    minor_units,
    scopes_note,
)
from core.errors import ApplicationError, not_found
from core.idempotency import StoredResponse, idempotent_response
from core.models import SCOPE_PAYMENTS_READ, SCOPE_PAYMENTS_WRITE
from core.pagination import list_body, page_request_from_query
from core.permissions import acting_user_id
from core.serializers import ErrorSerializer, form_to_payload
from payments import saga_log, selectors, services, webhooks
from payments.serializers import (
    PaymentDetailOutputSerializer,
    PaymentInitiateInputSerializer,
    PaymentListOutputSerializer,
    PaymentOutputSerializer,
    payment_path,
    public_saga_log,
)

logger = logging.getLogger(__name__)
WebhookResultSerializer = inline_serializer("WebhookResult", {"status": serializers.CharField()})


def invalid_webhook(message: str) -> ApplicationError:
    return ApplicationError(
        status_code=status.HTTP_400_BAD_REQUEST, type="invalid_request_error", code="webhook_invalid", message=message
    )


class PaymentInitiateView(ApiView):
    required_scopes = {"POST": (SCOPE_PAYMENTS_WRITE,)}

    @extend_schema(
        operation_id="payments_initiate",
        description=(
            "Reserve the amount and start the payment saga. Form-encoded or JSON. A user-bound key pays from "
            f"its own user's account only. At most PAYMENT_MAX_AMOUNTS per currency. {scopes_note(SCOPE_PAYMENTS_WRITE)}"
        ),
        request={media_type: PaymentInitiateInputSerializer for media_type in FORM_OR_JSON},
        parameters=[
            idempotency_parameter(),
            OpenApiParameter("X-Correlation-ID", str, OpenApiParameter.HEADER, description="Generated when absent."),
        ],
        responses={202: PaymentOutputSerializer, **errors(400, 401, 402, 403, 404, 409, 415, 422)},
    )
    def post(self, request):
        serializer = PaymentInitiateInputSerializer(data=form_to_payload(request.data, integer_fields=("user_id",)))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        visible_to = acting_user_id(request)
        if visible_to is not None and data["user_id"] != visible_to:
            raise not_found("user", data["user_id"], param="user_id")
        currency = data.get("currency", settings.DEFAULT_CURRENCY)
        require_supported_currency(currency)
        params = {
            "user_id": data["user_id"],
            "amount_minor": minor_units(data["amount"], currency),
            "currency": currency,
            "metadata": data.get("metadata", {}),
            "payment_method": data.get("payment_method"),
        }

        def execute() -> StoredResponse:
            payment = services.payment_initiate(**params, correlation_id=request.correlation_id)
            return StoredResponse(
                status.HTTP_202_ACCEPTED,
                PaymentOutputSerializer(payment).data,
                {"Location": payment_path(payment)},
            )

        return idempotent_response(request, params=params, execute=execute)


class PaymentDetailView(ApiView):
    required_scopes = {"GET": (SCOPE_PAYMENTS_READ,)}

    @extend_schema(
        operation_id="payments_retrieve",
        description=f"A payment with its Firestore saga log. {scopes_note(SCOPE_PAYMENTS_READ)}",
        parameters=[OpenApiParameter("payment_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
        responses={200: PaymentDetailOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def get(self, request, payment_id: str):
        payment = selectors.payment_get(payment_id=payment_id, visible_to=acting_user_id(request))
        payment_id_var.set(str(payment.pk))
        body = dict(PaymentOutputSerializer(payment).data)
        try:
            body["saga_log"] = public_saga_log(saga_log.read_saga_log(payment.pk))
        except Exception as error:
            # The payment itself is in the database; the log is extra detail, so degrade instead of failing.
            logger.warning("saga log unavailable: %s: %s", type(error).__name__, error)
            body["saga_log"] = None
        return Response(body)


class UserPaymentListView(ApiView):
    required_scopes = {"GET": (SCOPE_PAYMENTS_READ,)}
    query_parameters = {"GET": ("limit", "starting_after")}

    @extend_schema(
        operation_id="users_payments_list",
        description=f"The user's payments, newest first. {scopes_note(SCOPE_PAYMENTS_READ)}",
        parameters=[
            LIMIT_PARAMETER,
            OpenApiParameter(
                "starting_after", OpenApiTypes.UUID, description="Id of the last payment of the previous page."
            ),
        ],
        responses={200: PaymentListOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def get(self, request, user_id: int):
        payments, has_more = selectors.payment_list_for_user(
            user_id=user_id, page=page_request_from_query(request.query_params), visible_to=acting_user_id(request)
        )
        return Response(
            list_body(PaymentOutputSerializer(payments, many=True).data, has_more=has_more, url=request.path)
        )


class ProviderWebhookView(APIView):
    """POST /webhooks/stripe: the provider's signed events (payments.webhooks)."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="provider_webhook",
        description=(
            "The payment provider's webhook endpoint (Stripe's event format). The Stripe-Signature header is "
            "verified with PAYMENT_GATEWAY_WEBHOOK_SECRET; each event id is acted on once, and an event only "
            "makes its payment due for the reconciler or the sweeper, which read the provider themselves."
        ),
        request={"application/json": OpenApiTypes.OBJECT},
        responses={200: WebhookResultSerializer, 400: ErrorSerializer},
        auth=[],
    )
    def post(self, request):
        # The signature covers the exact bytes: read them before anything parses the body.
        payload = request.body
        try:
            result = webhooks.receive(payload, request.headers.get("Stripe-Signature"))
        except WebhookInvalid as error:
            raise invalid_webhook(str(error)) from error
        return Response({"status": result})
