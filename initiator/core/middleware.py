import re
import uuid

from core.context import correlation_id_var, payment_id_var

CORRELATION_HEADER = "X-Correlation-ID"
_ACCEPTABLE_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


class CorrelationIdMiddleware:
    """Take the caller's X-Correlation-ID (if well formed) or make one; echo it on the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get(CORRELATION_HEADER, "")
        correlation_id = supplied if _ACCEPTABLE_CORRELATION_ID.match(supplied) else str(uuid.uuid4())
        request.correlation_id = correlation_id
        correlation_token = correlation_id_var.set(correlation_id)
        payment_token = payment_id_var.set(None)
        try:
            response = self.get_response(request)
        finally:
            correlation_id_var.reset(correlation_token)
            payment_id_var.reset(payment_token)
        response[CORRELATION_HEADER] = correlation_id
        return response
