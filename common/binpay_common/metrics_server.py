"""Prometheus metrics on a port of their own, never on the service's public port.

METRICS_PORT (default 9090, 0 = off) is bound on all interfaces inside the container: only what
reaches the container on that port (a Managed Prometheus collector, a sidecar on localhost) can
scrape it, and neither Cloud Run nor a Service/Ingress routes to it unless told to.

Gunicorn runs several worker processes: its configuration calls `prepare_gunicorn()` in the master
before any worker starts, so every worker writes its samples to one private directory
(prometheus_client's multiprocess mode), and `serve()` in the master adds them up at scrape time.
A scrape reads those files and nothing else: it costs no database query and no request to anything.
Standalone processes (pull workers, the initiator's consumer and loops) serve their own registry.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Mapping

DEFAULT_PORT = 9090
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

logger = logging.getLogger(__name__)


class MetricsConfigError(ValueError):
    """METRICS_PORT is not a port number."""


def metrics_port(environ: Mapping[str, str] = os.environ) -> int:
    """METRICS_PORT: 9090 when unset or empty, 0 = no metrics server."""
    raw = (environ.get("METRICS_PORT") or "").strip()
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise MetricsConfigError(f"METRICS_PORT must be a port number (0 = off), got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise MetricsConfigError(f"METRICS_PORT must be between 0 and 65535, got {port}")
    return port


def prepare_gunicorn(environ=os.environ) -> str:
    """In the gunicorn master, before workers fork: a fresh directory for this server's workers.

    Under PROMETHEUS_MULTIPROC_DIR when the platform set one (an emptyDir), else under TMPDIR. Fresh
    each start, so no file of an earlier run is added in; private, so no other process's files are.
    """
    parent = environ.get(MULTIPROC_ENV) or None
    directory = tempfile.mkdtemp(prefix="binpay-metrics-", dir=parent)
    environ[MULTIPROC_ENV] = directory
    return directory


def registry():
    """What a scrape of this process (or of this gunicorn master's workers) reports."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


def serve(port: int, addr: str = "0.0.0.0"):  # noqa: S104 - inside the container; see the module docstring
    """Serve GET /metrics on `port`; None when off (0) or when the port cannot be bound.

    A port that cannot be bound is logged at ERROR and the service carries on: metrics are worth
    having, not worth refusing to serve payments over.
    """
    if port == 0:
        logger.info("metrics server off (METRICS_PORT=0)")
        return None
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry())
    except OSError as error:
        logger.error("metrics server not started on port %s: %s", port, error)
        return None
    logger.info("metrics served on port %s", port)
    return server


def serve_from_env():
    """A standalone process's metrics server on METRICS_PORT."""
    return serve(metrics_port())


def gunicorn_worker_exited(pid: int) -> None:
    """Gunicorn's child_exit hook: a dead worker's live gauges stop counting (its counters stay)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def remove_gunicorn_dir(environ=os.environ) -> None:
    """Gunicorn's on_exit hook: the directory prepare_gunicorn() made goes with the server."""
    directory = environ.get(MULTIPROC_ENV)
    if directory and os.path.basename(directory).startswith("binpay-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)
