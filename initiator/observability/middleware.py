from observability.metrics import metrics_response


class MetricsMiddleware:
    """Answer GET /metrics before anything checks the Host header (scrapers use the pod IP, like probes).

    Must come first in MIDDLEWARE, next to core.middleware.ProbeMiddleware.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == "/metrics" and request.method in ("GET", "HEAD"):
            return metrics_response()
        return self.get_response(request)
