"""Helpers shared by the API views."""

from drf_spectacular.utils import OpenApiParameter
from rest_framework.views import APIView

from core.errors import invalid_parameter
from core.idempotency import IDEMPOTENCY_HEADER, MAX_KEY_LENGTH
from core.models import BIGINT_MAX
from core.money import AmountError, to_minor_units
from core.pagination import MAX_LIMIT
from core.serializers import ErrorSerializer

FORM_OR_JSON = ("application/json", "application/x-www-form-urlencoded")


def minor_units(amount: str, currency: str) -> int:
    """The decimal string of a request in the currency's minor units, or a 400 naming `amount`."""
    try:
        return to_minor_units(amount, currency)
    except AmountError as error:
        raise invalid_parameter("amount", str(error)) from None


class ApiView(APIView):
    """A public API view: after authentication and scopes, a query parameter the operation does not
    define is refused (400), as unknown body parameters are."""

    query_parameters: dict[str, tuple[str, ...]] = {}

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if not hasattr(self, request.method.lower()):
            return  # a method the view does not serve answers 405, whatever the query
        allowed = self.query_parameters.get("GET" if request.method == "HEAD" else request.method, ())
        for name in request.query_params:
            if name not in allowed:
                raise invalid_parameter(name, "Received unknown parameter.")


def idempotency_parameter(*, required: bool = False) -> OpenApiParameter:
    return OpenApiParameter(
        IDEMPOTENCY_HEADER,
        {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": r"\S"},
        OpenApiParameter.HEADER,
        required=required,
        description="Replays the first response for the same parameters.",
    )


LIMIT_PARAMETER = OpenApiParameter(
    "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, description="1 to 100, default 10."
)


def id_cursor_parameter(what: str) -> OpenApiParameter:
    return OpenApiParameter(
        "starting_after",
        {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
        description=f"Id of the last {what} of the previous page.",
    )


def errors(*status_codes: int) -> dict:
    return {status_code: ErrorSerializer for status_code in status_codes}


def scopes_note(*scopes: str) -> str:
    return f"Scopes: {', '.join(scopes)}."
