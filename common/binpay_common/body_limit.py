"""A WSGI wrapper that bounds request bodies before the framework reads a byte of them (issue 22, M5).

DRF's parsers read the request stream themselves, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never applies
to a JSON body, and Werkzeug cuts a chunked body at MAX_CONTENT_LENGTH silently. Here, a Content-Length
over the limit is answered 413 without reading the body; a chunked body (no Content-Length) is read up to
the limit and handed on as an ordinary body of known length (Django reads a body without Content-Length
as empty), or answered 413 once it passes the limit.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

# (code, message) → the service's error document.
ErrorBody = Callable[[str, str], dict]


class BodyLimit:
    def __init__(self, application, max_bytes: int, error_body: ErrorBody) -> None:
        self.application = application
        self.max_bytes = max_bytes
        self.error_body = error_body

    def __call__(self, wsgi, start_response):
        declared = wsgi.get("CONTENT_LENGTH") or ""
        if declared:
            if not declared.isdigit():
                return self._refuse(
                    start_response, "400 Bad Request", "body_invalid", "Content-Length is not a number."
                )
            if int(declared) > self.max_bytes:
                return self._too_large(start_response)
        elif "chunked" in wsgi.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = wsgi["wsgi.input"].read(self.max_bytes + 1)
            if len(body) > self.max_bytes:
                return self._too_large(start_response)
            wsgi["wsgi.input"] = io.BytesIO(body)
            wsgi["CONTENT_LENGTH"] = str(len(body))
        return self.application(wsgi, start_response)

    def _too_large(self, start_response):
        return self._refuse(
            start_response,
            "413 Content Too Large",
            "body_too_large",
            f"The request body is larger than {self.max_bytes} bytes.",
        )

    def _refuse(self, start_response, status: str, code: str, message: str):
        body = json.dumps(self.error_body(code, message)).encode()
        # The unread body stays on the connection: close it rather than parse what follows as a request.
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")],
        )
        return [body]
