from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.serializers import (
    DepositInputSerializer,
    DepositListOutputSerializer,
    DepositOutputSerializer,
    UserCreateInputSerializer,
    UserListOutputSerializer,
    UserOutputSerializer,
)
from core.api import idempotent_response
from core.errors import invalid_parameter, unprocessable
from core.idempotency import StoredResponse
from core.money import AmountError, to_minor_units
from core.pagination import list_body, page_request_from_query
from core.serializers import ErrorSerializer

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, description="Replays the first response for the same parameters."
)
PAGINATION_PARAMETERS = [
    OpenApiParameter("limit", int, description="1 to 100, default 10."),
    OpenApiParameter("starting_after", str, description="Id of the last object of the previous page."),
]
ERRORS = {code: ErrorSerializer for code in (400, 401, 404, 409, 422)}


class UserListCreateView(APIView):
    @extend_schema(
        operation_id="users_create",
        request=UserCreateInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: UserOutputSerializer, **ERRORS},
    )
    def post(self, request):
        serializer = UserCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)
        params.setdefault("currency", settings.DEFAULT_CURRENCY)

        def execute() -> StoredResponse:
            user = services.user_create(email=params["email"], name=params["name"], currency=params["currency"])
            user = selectors.user_get(user_id=user.pk)
            return StoredResponse(status.HTTP_201_CREATED, UserOutputSerializer(user).data)

        return idempotent_response(request, params=params, execute=execute)

    @extend_schema(
        operation_id="users_list", parameters=PAGINATION_PARAMETERS, responses={200: UserListOutputSerializer}
    )
    def get(self, request):
        users, has_more = selectors.user_list(page=page_request_from_query(request.query_params))
        return Response(list_body(UserOutputSerializer(users, many=True).data, has_more=has_more, url=request.path))


class UserDetailView(APIView):
    @extend_schema(operation_id="users_retrieve", responses={200: UserOutputSerializer, 404: ErrorSerializer})
    def get(self, request, user_id: int):
        return Response(UserOutputSerializer(selectors.user_get(user_id=user_id)).data)


class DepositListCreateView(APIView):
    @extend_schema(
        operation_id="deposits_create",
        request=DepositInputSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: DepositOutputSerializer, **ERRORS},
    )
    def post(self, request, user_id: int):
        serializer = DepositInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)

        def execute() -> StoredResponse:
            account = selectors.user_get(user_id=user_id).account
            currency = params.get("currency", account.currency)
            services.require_supported_currency(currency)
            if currency != account.currency:
                raise unprocessable(
                    "currency_mismatch", f"The account holds {account.currency}, not {currency}.", "currency"
                )
            try:
                amount = to_minor_units(params["amount"], currency)
            except AmountError as error:
                raise invalid_parameter("amount", str(error)) from None
            deposit = services.deposit_create(user_id=user_id, amount=amount, currency=currency)
            return StoredResponse(status.HTTP_201_CREATED, DepositOutputSerializer(deposit).data)

        return idempotent_response(request, params=params, execute=execute, key_required=True)

    @extend_schema(
        operation_id="deposits_list",
        parameters=PAGINATION_PARAMETERS,
        responses={200: DepositListOutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request, user_id: int):
        deposits, has_more = selectors.deposit_list_for_user(
            user_id=user_id, page=page_request_from_query(request.query_params)
        )
        return Response(
            list_body(DepositOutputSerializer(deposits, many=True).data, has_more=has_more, url=request.path)
        )
