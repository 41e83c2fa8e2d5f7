"""Gunicorn settings, read automatically by `gunicorn binpay_initiator.wsgi:application` run from initiator/.

Bind: gunicorn's default (127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set, as on Cloud Run);
workers: $WEB_CONCURRENCY (gunicorn's own variable), default 2. Any flag given on the command line wins.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threaded workers: Pub/Sub's push client keeps connections alive, and against sync workers (one
# request per connection) the emulator delivered about one message per second; with gthread, hundreds.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Let in-flight requests finish on SIGTERM (Cloud Run / Kubernetes give 10-30 s).
graceful_timeout = 25
timeout = 60
# No runtime control socket: nothing uses it, and the container's root filesystem is read-only.
control_socket_disable = True
# Gunicorn's own lines as JSON too, like the application's (binpay_common/logs.py).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "binpay_common.logs.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}
