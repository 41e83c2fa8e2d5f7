"""A live gunicorn for tests that need one with their own settings (issue 22: metrics, limits, bodies)."""

import sys
from pathlib import Path

from payments.tests.test_processes import ProcessTestCase, wait_for_http
from testing.fixtures import free_port


class LiveGunicornTestCase(ProcessTestCase):
    """One gunicorn (2 workers, as the Dockerfile starts it) per class, with `server_env` on top."""

    server_env: dict[str, str] = {}

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        port = free_port()
        cls.base = f"http://127.0.0.1:{port}"
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        cls.server, cls.server_log = cls.start(
            [gunicorn, "binpay_initiator.wsgi:application", "-b", f"127.0.0.1:{port}"], "gunicorn.log", **cls.server_env
        )
        try:
            wait_for_http(f"{cls.base}/healthz", cls.server, cls.server_log)
        except AssertionError:
            cls.tearDownClass()
            raise
