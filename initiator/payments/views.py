import logging

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.views import ERRORS, IDEMPOTENCY_PARAMETER, PAGINATION_PARAMETERS
from core.api import idempotent_response
from core.context import payment_id_var
from core.idempotency import StoredResponse
from core.pagination import list_body, page_request_from_query
from core.serializers import ErrorSerializer
from payments import saga_log, selectors, services
from payments.serializers import (
    PaymentDetailOutputSerializer,
    PaymentInitiateInputSerializer,
    PaymentListOutputSerializer,
    PaymentOutputSerializer,
    form_to_payload,
    payment_path,
)

logger = logging.getLogger(__name__)


class PaymentInitiateView(APIView):
    @extend_schema(
        operation_id="payments_initiate",
        description="Reserve the amount and start the payment saga. Form-encoded or JSON.",
        request={
            "application/json": PaymentInitiateInputSerializer,
            "application/x-www-form-urlencoded": PaymentInitiateInputSerializer,
        },
        parameters=[
            IDEMPOTENCY_PARAMETER,
            OpenApiParameter("X-Correlation-ID", str, OpenApiParameter.HEADER, description="Generated when absent."),
        ],
        responses={202: PaymentOutputSerializer, 402: ErrorSerializer, **ERRORS},
    )
    def post(self, request):
        serializer = PaymentInitiateInputSerializer(data=form_to_payload(request.data))
        serializer.is_valid(raise_exception=True)
        params = {
            "user_id": serializer.validated_data["user_id"],
            "amount": serializer.validated_data["amount"],
            "currency": serializer.validated_data.get("currency", settings.DEFAULT_CURRENCY),
            "metadata": serializer.validated_data.get("metadata", {}),
        }

        def execute() -> StoredResponse:
            payment = services.payment_initiate(**params, correlation_id=request.correlation_id)
            return StoredResponse(
                status.HTTP_202_ACCEPTED,
                PaymentOutputSerializer(payment).data,
                {"Location": payment_path(payment)},
            )

        return idempotent_response(request, params=params, execute=execute)


class PaymentDetailView(APIView):
    @extend_schema(
        operation_id="payments_retrieve",
        responses={200: PaymentDetailOutputSerializer, 404: ErrorSerializer},
    )
    def get(self, request, payment_id: str):
        payment = selectors.payment_get(payment_id=payment_id)
        payment_id_var.set(str(payment.pk))
        body = dict(PaymentOutputSerializer(payment).data)
        try:
            body["saga_log"] = saga_log.read_saga_log(payment.pk)
        except Exception as error:
            # The payment itself is in the database; the log is extra detail, so degrade instead of failing.
            logger.warning("saga log unavailable: %s: %s", type(error).__name__, error)
            body["saga_log"] = None
        return Response(body)


class UserPaymentListView(APIView):
    @extend_schema(
        operation_id="users_payments_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: PaymentListOutputSerializer, 404: ErrorSerializer},
    )
    def get(self, request, user_id: int):
        payments, has_more = selectors.payment_list_for_user(
            user_id=user_id, page=page_request_from_query(request.query_params)
        )
        return Response(
            list_body(PaymentOutputSerializer(payments, many=True).data, has_more=has_more, url=request.path)
        )
