"""`python manage.py test` against the real Pub/Sub and Firestore emulators.

When PUBSUB_EMULATOR_HOST / FIRESTORE_EMULATOR_HOST are not set, the runner starts both emulators
(devtools/emulators.py) for the run and stops them afterwards. The SQLite test database is a file
(not memory), so the processes the tests start (gunicorn, consume_outcomes) can share it.
Log lines are silenced unless BINPAY_TEST_LOGS=1. Rate limits are off in-process (see below).
"""

import logging
import os
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.test import override_settings
from django.test.runner import DiscoverRunner

DEVTOOLS = Path(__file__).resolve().parents[2] / "devtools"


class EmulatorTestRunner(DiscoverRunner):
    def setup_test_environment(self, **kwargs) -> None:
        self._emulators = None
        if not (os.environ.get("PUBSUB_EMULATOR_HOST") and os.environ.get("FIRESTORE_EMULATOR_HOST")):
            sys.path.insert(0, str(DEVTOOLS))
            import emulators

            self._emulators = emulators.start(project_id=settings.PROJECT_ID)
            os.environ.update(self._emulators.env())
        self._sqlite_dir = None
        database = settings.DATABASES["default"]
        if database["ENGINE"] == "django.db.backends.sqlite3":
            self._sqlite_dir = tempfile.TemporaryDirectory(prefix="binpay-initiator-test-")
            database.setdefault("TEST", {})["NAME"] = str(Path(self._sqlite_dir.name) / "test.sqlite3")
        super().setup_test_environment(**kwargs)
        # In-process tests send bursts through one address; the limits are tested on live servers
        # (core/tests/test_request_limits.py) and in-process with override_settings.
        self._rate_limits = override_settings(RATE_LIMIT_ENABLED=False)
        self._rate_limits.enable()
        if not os.environ.get("BINPAY_TEST_LOGS"):
            # Keep the test output readable; set BINPAY_TEST_LOGS=1 to see the JSON log lines.
            for handler in logging.getLogger().handlers:
                handler.setLevel(logging.CRITICAL + 1)

    def teardown_databases(self, old_config, **kwargs) -> None:
        # The outbox publisher's thread keeps its connection while payments keep coming; PostgreSQL
        # refuses to drop a test database somebody is connected to.
        from payments.outbox import commit_publisher

        commit_publisher.release_connection(timeout=30)
        super().teardown_databases(old_config, **kwargs)

    def teardown_test_environment(self, **kwargs) -> None:
        self._rate_limits.disable()
        super().teardown_test_environment(**kwargs)
        if self._emulators is not None:
            self._emulators.stop()
            for key in self._emulators.env():
                os.environ.pop(key, None)
        if self._sqlite_dir is not None:
            self._sqlite_dir.cleanup()
