"""WSGI entry point: `gunicorn binpay_initiator.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "binpay_initiator.settings")

application = get_wsgi_application()
