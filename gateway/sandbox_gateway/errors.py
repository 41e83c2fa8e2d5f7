"""Stripe's error shape: {"error": {"type", "code", "decline_code", "message", "param", "payment_intent", ...}}.

https://docs.stripe.com/api/errors: types api_error, card_error, idempotency_error,
invalid_request_error; 400 bad request, 401 no valid key, 402 request failed (declines),
404 missing resource, 409 conflict (same idempotency key in flight), 5xx Stripe's side.

``saved`` tells the idempotency layer whether the answer is stored under the request's key.
Stripe "saves results only after the execution of an endpoint begins. If incoming parameters
fail validation ... no idempotent result is saved" (https://docs.stripe.com/idempotency):
parameter and lookup errors are not saved; errors of the operation itself (a decline, a state
the object is not in) are.
"""

from __future__ import annotations


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
        **extra: object,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.code = code
        self.param = param
        self.saved = saved
        self.extra = extra

    def body(self) -> dict[str, object]:
        error: dict[str, object] = {"type": self.error_type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid_param(message: str, param: str | None, code: str | None = None) -> StripeError:
    """A request that fails validation: 400, never saved under its idempotency key."""
    return StripeError(400, "invalid_request_error", message, code=code, param=param, saved=False)


def unknown_param(name: str) -> StripeError:
    return invalid_param(f"Received unknown parameter: {name}", name, "parameter_unknown")


def missing_param(name: str) -> StripeError:
    return invalid_param(f"Missing required param: {name}.", name, "parameter_missing")


def no_such(kind: str, object_id: str, param: str | None = None) -> StripeError:
    """A missing object: 404 when it is the request's path, 400 when a parameter names it."""
    status = 404 if param is None else 400
    return StripeError(
        status,
        "invalid_request_error",
        f"No such {kind}: '{object_id}'",
        code="resource_missing",
        param=param or "id",
        saved=False,
    )


def unexpected_state(message: str, payment_intent: dict) -> StripeError:
    """An operation the PaymentIntent's status does not allow (saved: execution had begun)."""
    return StripeError(
        400,
        "invalid_request_error",
        message,
        code="payment_intent_unexpected_state",
        payment_intent=payment_intent,
    )


def invalid_state(message: str, code: str | None = None, param: str | None = None) -> StripeError:
    """A request the object's current state refuses (saved: execution had begun)."""
    return StripeError(400, "invalid_request_error", message, code=code, param=param)


def unavailable() -> StripeError:
    return StripeError(
        503, "api_error", "The sandbox is unavailable (simulated outage); nothing was done.", saved=False
    )


def timed_out() -> StripeError:
    return StripeError(504, "api_error", "The sandbox timed out (simulated); nothing was done.", saved=False)


def saved_server_error() -> StripeError:
    return StripeError(
        500, "api_error", "An unknown error occurred (simulated). This answer is saved under the Idempotency-Key."
    )
