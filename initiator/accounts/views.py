from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts import selectors, services
from accounts.serializers import (
    DepositInputSerializer,
    DepositListOutputSerializer,
    DepositOutputSerializer,
    PaymentMethodInputSerializer,
    UserCreateInputSerializer,
    UserListOutputSerializer,
    UserOutputSerializer,
)
from core.api import (
    FORM_OR_JSON,
    LIMIT_PARAMETER,
    ApiView,
    errors,
    id_cursor_parameter,
    idempotency_parameter,
    minor_units,
    scopes_note,
)
from core.idempotency import StoredResponse, idempotent_response
from core.models import SCOPE_DEPOSITS_WRITE, SCOPE_USERS_READ, SCOPE_USERS_WRITE
from core.pagination import list_body, page_request_from_query
from core.permissions import acting_user_id
from core.serializers import form_to_payload


class UserListCreateView(ApiView):
    required_scopes = {"POST": (SCOPE_USERS_WRITE,), "GET": (SCOPE_USERS_READ,)}
    query_parameters = {"GET": ("limit", "starting_after")}

    @extend_schema(
        operation_id="users_create",
        description=f"Create a user and its account. {scopes_note(SCOPE_USERS_WRITE)}",
        request={media_type: UserCreateInputSerializer for media_type in FORM_OR_JSON},
        parameters=[idempotency_parameter()],
        responses={201: UserOutputSerializer, **errors(400, 401, 403, 409, 415, 422)},
    )
    def post(self, request):
        serializer = UserCreateInputSerializer(data=form_to_payload(request.data))
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)
        params.setdefault("currency", settings.DEFAULT_CURRENCY)

        def execute() -> StoredResponse:
            user = services.user_create(
                email=params["email"],
                name=params["name"],
                currency=params["currency"],
                default_payment_method=params.get("default_payment_method"),
                provider_customer=params.get("provider_customer"),
            )
            user = selectors.user_get(user_id=user.pk)
            return StoredResponse(status.HTTP_201_CREATED, UserOutputSerializer(user).data)

        return idempotent_response(request, params=params, execute=execute)

    @extend_schema(
        operation_id="users_list",
        description=f"Users, newest first; a user-bound key sees only its user. {scopes_note(SCOPE_USERS_READ)}",
        parameters=[LIMIT_PARAMETER, id_cursor_parameter("user")],
        responses={200: UserListOutputSerializer, **errors(400, 401, 403)},
    )
    def get(self, request):
        users, has_more = selectors.user_list(
            page=page_request_from_query(request.query_params), visible_to=acting_user_id(request)
        )
        return Response(list_body(UserOutputSerializer(users, many=True).data, has_more=has_more, url=request.path))


class UserDetailView(ApiView):
    required_scopes = {"GET": (SCOPE_USERS_READ,)}

    @extend_schema(
        operation_id="users_retrieve",
        description=f"A user and its balances. {scopes_note(SCOPE_USERS_READ)}",
        responses={200: UserOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def get(self, request, user_id: int):
        return Response(
            UserOutputSerializer(selectors.user_get(user_id=user_id, visible_to=acting_user_id(request))).data
        )


class UserPaymentMethodView(ApiView):
    required_scopes = {"POST": (SCOPE_USERS_WRITE,)}

    @extend_schema(
        operation_id="users_set_payment_method",
        description=(
            "Set the provider payment method (and customer) the user's payments are charged to by default. "
            "A payment may still name its own. Only the id's shape is checked here; the provider answers "
            f"when a payment is charged. {scopes_note(SCOPE_USERS_WRITE)}"
        ),
        request={media_type: PaymentMethodInputSerializer for media_type in FORM_OR_JSON},
        parameters=[idempotency_parameter()],
        responses={200: UserOutputSerializer, **errors(400, 401, 403, 404, 409, 415)},
    )
    def post(self, request, user_id: int):
        serializer = PaymentMethodInputSerializer(data=form_to_payload(request.data))
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)
        selectors.user_get(user_id=user_id, visible_to=acting_user_id(request))

        def execute() -> StoredResponse:
            services.user_set_payment_method(
                user_id=user_id,
                default_payment_method=params["default_payment_method"],
                provider_customer=params.get("provider_customer"),
            )
            return StoredResponse(status.HTTP_200_OK, UserOutputSerializer(selectors.user_get(user_id=user_id)).data)

        return idempotent_response(request, params=params, execute=execute)


class DepositListCreateView(ApiView):
    # Listing deposits is part of reading a user's account; making one mints money.
    required_scopes = {"POST": (SCOPE_DEPOSITS_WRITE,), "GET": (SCOPE_USERS_READ,)}
    query_parameters = {"GET": ("limit", "starting_after")}

    @extend_schema(
        operation_id="deposits_create",
        description=(
            "Credit the user's account (operators only: user-bound keys never hold this scope). At most "
            f"DEPOSIT_MAX_AMOUNTS per currency. {scopes_note(SCOPE_DEPOSITS_WRITE)}"
        ),
        request={media_type: DepositInputSerializer for media_type in FORM_OR_JSON},
        parameters=[idempotency_parameter(required=True)],
        responses={201: DepositOutputSerializer, **errors(400, 401, 403, 404, 409, 415, 422)},
    )
    def post(self, request, user_id: int):
        serializer = DepositInputSerializer(data=form_to_payload(request.data))
        serializer.is_valid(raise_exception=True)
        params = dict(serializer.validated_data)
        account = selectors.user_get(user_id=user_id, visible_to=acting_user_id(request)).account
        currency = params.get("currency", account.currency)
        services.require_supported_currency(currency)
        amount = minor_units(params["amount"], currency)

        def execute() -> StoredResponse:
            deposit = services.deposit_create(
                user_id=user_id, amount=amount, currency=currency, created_by=request.auth
            )
            return StoredResponse(status.HTTP_201_CREATED, DepositOutputSerializer(deposit).data)

        return idempotent_response(request, params=params, execute=execute, key_required=True)

    @extend_schema(
        operation_id="deposits_list",
        description=f"The user's deposits, newest first. {scopes_note(SCOPE_USERS_READ)}",
        parameters=[LIMIT_PARAMETER, id_cursor_parameter("deposit")],
        responses={200: DepositListOutputSerializer, **errors(400, 401, 403, 404)},
    )
    def get(self, request, user_id: int):
        deposits, has_more = selectors.deposit_list_for_user(
            user_id=user_id, page=page_request_from_query(request.query_params), visible_to=acting_user_id(request)
        )
        return Response(
            list_body(DepositOutputSerializer(deposits, many=True).data, has_more=has_more, url=request.path)
        )
