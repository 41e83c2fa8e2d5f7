"""Gunicorn settings, read automatically by `gunicorn -w 4 -b 0.0.0.0:5000 app:app` run from processor/.

Threaded workers: a push delivery spends most of its time waiting on Firestore and the gateway,
and Pub/Sub's push client keeps connections alive — against sync workers (one request per
connection) the emulator delivered about one message per second; with gthread, hundreds.
Flags on the command line win over these. Metrics: the master serves its workers' counts on
METRICS_PORT (default 9090, 0 = off), never on the web port (binpay_common.metrics_server).
"""

import os

from binpay_common import metrics_server

# Now, in the master, before the logging configuration below imports the app's packages (and with
# them prometheus_client, which reads PROMETHEUS_MULTIPROC_DIR once): every worker then counts into it.
metrics_server.prepare_gunicorn()

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


def when_ready(server) -> None:
    metrics_server.serve(metrics_server.metrics_port())


def child_exit(server, worker) -> None:
    metrics_server.gunicorn_worker_exited(worker.pid)


def on_exit(server) -> None:
    metrics_server.remove_gunicorn_dir()
