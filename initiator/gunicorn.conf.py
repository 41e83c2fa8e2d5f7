"""Gunicorn settings, read automatically by `gunicorn binpay_initiator.wsgi:application` run from initiator/.

Bind: gunicorn's default (127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set, as on Cloud Run);
workers: $WEB_CONCURRENCY (gunicorn's own variable), default 2. Any flag given on the command line wins.
Metrics: the master serves its workers' counts on METRICS_PORT (default 9090, 0 = off), never on the
API's port (binpay_common.metrics_server).
"""

import os

from binpay_common import metrics_server

# Now, in the master, before the logging configuration below imports the app's packages (and with
# them prometheus_client, which reads PROMETHEUS_MULTIPROC_DIR once): every worker then counts into it.
metrics_server.prepare_gunicorn()

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


def when_ready(server) -> None:
    metrics_server.serve(metrics_server.metrics_port())


def post_worker_init(worker) -> None:
    from observability.metrics import start_state_refresher

    start_state_refresher()


def child_exit(server, worker) -> None:
    metrics_server.gunicorn_worker_exited(worker.pid)


def on_exit(server) -> None:
    metrics_server.remove_gunicorn_dir()
