"""WSGI entry point: `gunicorn binpay_initiator.wsgi:application`."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from binpay_common.body_limit import BodyLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binpay_initiator.settings")


def _error_body(code: str, message: str) -> dict:
    return {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": None}}


# Bodies are bounded before Django builds the request (binpay_common/body_limit.py).
application = BodyLimit(get_wsgi_application(), settings.REQUEST_BODY_MAX_BYTES, _error_body)
