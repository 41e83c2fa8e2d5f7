"""The protocol's error shape: {"error": {"type", "code", "message", ...}}."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, object]:
        return {"error": {"type": self.error_type, "code": self.code, "message": self.message, **self.extra}}


def invalid_request(code: str, message: str, **extra: object) -> ApiError:
    return ApiError(400, "invalid_request_error", code, message, **extra)


def not_found(message: str) -> ApiError:
    return ApiError(404, "invalid_request_error", "resource_missing", message)


def unavailable() -> ApiError:
    return ApiError(503, "api_error", "service_unavailable", "The sandbox gateway is unavailable (simulated).")


def timed_out() -> ApiError:
    return ApiError(504, "api_error", "timeout", "The sandbox gateway timed out (simulated); nothing was done.")
