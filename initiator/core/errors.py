"""One error type for the API, rendered as {"error": {"type", "code", "message", "param"}}."""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    def __init__(
        self,
        *,
        status_code: int,
        type: str,
        code: str,
        message: str,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type
        self.code = code
        self.message = message
        self.param = param

    def as_body(self) -> dict:
        return {"error": {"type": self.type, "code": self.code, "message": self.message, "param": self.param}}


def invalid_parameter(param: str, message: str) -> ApplicationError:
    return ApplicationError(
        status_code=status.HTTP_400_BAD_REQUEST,
        type="invalid_request_error",
        code="parameter_invalid",
        message=message,
        param=param,
    )


def missing_parameter(param: str, message: str | None = None) -> ApplicationError:
    return ApplicationError(
        status_code=status.HTTP_400_BAD_REQUEST,
        type="invalid_request_error",
        code="parameter_missing",
        message=message or f"Missing required parameter: {param}.",
        param=param,
    )


def unprocessable(code: str, message: str, param: str | None = None) -> ApplicationError:
    return ApplicationError(
        status_code=status.HTTP_422_UNPROCESSABLE_ENTITY,
        type="invalid_request_error",
        code=code,
        message=message,
        param=param,
    )


def not_found(resource: str, identifier: object, param: str | None = None) -> ApplicationError:
    return ApplicationError(
        status_code=status.HTTP_404_NOT_FOUND,
        type="invalid_request_error",
        code="resource_missing",
        message=f"No such {resource}: {identifier}",
        param=param,
    )


def insufficient_scope(missing: list[str]) -> ApplicationError:
    return ApplicationError(
        status_code=status.HTTP_403_FORBIDDEN,
        type="permission_error",
        code="insufficient_scope",
        message=f"This API key lacks the scope(s) {', '.join(missing)} this request needs.",
    )


def _first_validation_error(detail, prefix: str = "") -> tuple[str | None, exceptions.ErrorDetail | str]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            param = key if key != "non_field_errors" else None
            nested_param, error = _first_validation_error(value)
            full = ".".join(part for part in (prefix, param, nested_param) if part) or None
            return full, error
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], prefix)
    return (prefix or None), detail


def from_validation_error(error: exceptions.ValidationError) -> ApplicationError:
    param, detail = _first_validation_error(error.detail)
    code = getattr(detail, "code", "invalid")
    # A nested null (metadata.k: null) is a wrong value, not a missing parameter.
    if param and (code in {"required", "blank"} or (code == "null" and "." not in param)):
        return missing_parameter(param)
    return invalid_parameter(param, str(detail))


def _from_drf(exc: exceptions.APIException) -> ApplicationError:
    if isinstance(exc, exceptions.ValidationError):
        return from_validation_error(exc)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        if isinstance(exc, exceptions.NotAuthenticated):
            code = "api_key_missing"
        elif exc.detail.code in {"api_key_revoked", "api_key_expired"}:
            code = exc.detail.code
        else:
            code = "invalid_api_key"
        return ApplicationError(
            status_code=status.HTTP_401_UNAUTHORIZED, type="authentication_error", code=code, message=str(exc.detail)
        )
    if isinstance(exc, exceptions.PermissionDenied):
        return ApplicationError(
            status_code=status.HTTP_403_FORBIDDEN,
            type="permission_error",
            code="permission_denied",
            message=str(exc.detail),
        )
    if isinstance(exc, exceptions.NotFound):
        return ApplicationError(
            status_code=status.HTTP_404_NOT_FOUND,
            type="invalid_request_error",
            code="resource_missing",
            message=str(exc.detail),
        )
    if isinstance(exc, exceptions.ParseError | exceptions.UnsupportedMediaType):
        return ApplicationError(
            status_code=exc.status_code,
            type="invalid_request_error",
            code="body_invalid" if isinstance(exc, exceptions.ParseError) else "unsupported_media_type",
            message=str(exc.detail),
        )
    return ApplicationError(
        status_code=exc.status_code,
        type="invalid_request_error",
        code=exc.default_code,
        message=str(exc.detail),
    )


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        error = _from_drf(exc)
    elif isinstance(exc, ApplicationError):
        error = exc
    else:
        return None
    headers = {}
    if error.status_code == status.HTTP_401_UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Bearer realm="binpay"'
    logger.info("request refused: %s %s (%s)", error.status_code, error.code, error.param or "-")
    return Response(error.as_body(), status=error.status_code, headers=headers)


def json_not_found(request, exception=None) -> JsonResponse:
    """handler404: a path no route matches (e.g. /users/abc) answers in the API's error format."""
    error = ApplicationError(
        status_code=status.HTTP_404_NOT_FOUND,
        type="invalid_request_error",
        code="resource_missing",
        message=f"Unrecognized request URL ({request.method}: {request.path}).",
    )
    return JsonResponse(error.as_body(), status=error.status_code)


def json_bad_request(request, exception=None) -> JsonResponse:
    """handler400: e.g. a Host header outside ALLOWED_HOSTS."""
    error = ApplicationError(
        status_code=status.HTTP_400_BAD_REQUEST,
        type="invalid_request_error",
        code="bad_request",
        message="The request could not be understood.",
    )
    return JsonResponse(error.as_body(), status=error.status_code)


def json_server_error(request) -> JsonResponse:
    """handler500: never an HTML page, never details."""
    error = ApplicationError(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        type="api_error",
        code="internal_error",
        message="An internal error occurred.",
    )
    return JsonResponse(error.as_body(), status=error.status_code)
