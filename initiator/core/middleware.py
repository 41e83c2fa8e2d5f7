import re
import uuid

from binpay_common.logs import correlation_id_var, payment_id_var

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


class ProbeMiddleware:
    """Answer GET /healthz and /readyz before anything checks the Host header.

    Cloud Run and GKE probe with the pod's IP as Host, which ALLOWED_HOSTS rightly refuses for
    every other path. Must be the first middleware: later ones call request.get_host().
    """

    def __init__(self, get_response):
        from core.views import HealthView, ReadyView

        self.get_response = get_response
        self.probes = {"/healthz": HealthView.as_view(), "/readyz": ReadyView.as_view()}

    def __call__(self, request):
        probe = self.probes.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            response = probe(request)
            return response.render() if hasattr(response, "render") else response
        return self.get_response(request)
