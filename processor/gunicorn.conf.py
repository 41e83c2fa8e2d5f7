"""Gunicorn settings, read automatically by `gunicorn -w 4 -b 0.0.0.0:5000 app:app` run from processor/.

Threaded workers: a push delivery spends most of its time waiting on Firestore and the gateway,
and Pub/Sub's push client keeps connections alive — against sync workers (one request per
connection) the emulator delivered about one message per second; with gthread, hundreds.
Flags on the command line win over these.
"""

import os

worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Let in-flight deliveries finish on SIGTERM (Cloud Run / Kubernetes give 10-30 s).
graceful_timeout = 25
timeout = 60
# No runtime control socket: nothing uses it, and the container's root filesystem is read-only.
control_socket_disable = True
# Gunicorn's own lines as JSON too, like the application's (binpay_common/logs.py); plain text on
# stderr shows up in Cloud Logging as errors.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "binpay_common.logs.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    # No root handler here: the app installs its own (binpay_common.logs.configure_logging), so no line is doubled.
    "root": {"handlers": [], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}
