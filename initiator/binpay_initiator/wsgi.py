"""WSGI entry point: `gunicorn binpay_initiator.wsgi:application`."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from core.body_limit import BodyLimit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binpay_initiator.settings")

# Bodies are bounded before Django builds the request (core/body_limit.py).
application = BodyLimit(get_wsgi_application(), settings.REQUEST_BODY_MAX_BYTES)
