"""The initiator's log lines, as its processes write them: JSON, and no secret setting's value in them."""

import json
import subprocess
import sys
import uuid

from django.test import SimpleTestCase

from testing.fixtures import INITIATOR_DIR, child_env

PROGRAM = """
import logging
from django.conf import settings
log = logging.getLogger("payments.services")
for name, value in (("SECRET_KEY", settings.SECRET_KEY), ("PAYMENT_GATEWAY_API_KEY", settings.PAYMENT_GATEWAY_API_KEY),
                    ("DATABASES", settings.DATABASES["default"])):
    log.warning("setting %s is %s", name, value)
    log.info("as extra", extra={"setting": value})
    try:
        raise RuntimeError(f"could not connect with {value}")
    except RuntimeError:
        log.exception("failed")
log.info("calling the gateway", extra={"headers": {"Authorization": "Bearer " + settings.PAYMENT_GATEWAY_API_KEY}})
"""


class SecretSettingsNeverLoggedTests(SimpleTestCase):
    def test_no_secret_settings_value_reaches_a_log_line(self) -> None:
        secrets = {name: uuid.uuid4().hex for name in ("DJANGO_SECRET_KEY", "PAYMENT_GATEWAY_API_KEY", "password")}
        env = child_env(
            DJANGO_SECRET_KEY=secrets["DJANGO_SECRET_KEY"],
            PAYMENT_GATEWAY_API_KEY=secrets["PAYMENT_GATEWAY_API_KEY"],
            DATABASE_URL=f"postgres://binpay:{secrets['password']}@127.0.0.1:9/binpay",
            LOG_LEVEL="INFO",
        )

        run = subprocess.run(
            [sys.executable, "manage.py", "shell", "--verbosity", "0", "-c", PROGRAM],
            cwd=INITIATOR_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

        self.assertEqual(run.returncode, 0, run.stderr)
        lines = [json.loads(line) for line in run.stdout.splitlines()]
        self.assertEqual(len(lines), 10, run.stdout)
        leaked = sorted(name for name, secret in secrets.items() if secret in run.stdout + run.stderr)
        self.assertEqual(leaked, [])
