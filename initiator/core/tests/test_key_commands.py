"""Issue 22 (H2, L7): production keys never reach a log. seed_demo refuses production; create_api_key
writes the key to Secret Manager, to a 0600 file, or to a terminal, and refuses anything else; keys
expire by default."""

import io
import os
import pty
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from django.core.management import CommandError, call_command
from django.test import TestCase, TransactionTestCase
from django.utils import timezone

from accounts.models import User
from core.models import ApiKey, hash_api_key
from testing.fake_secret_manager import FakeSecretManager
from testing.fixtures import INITIATOR_DIR, child_env

PRODUCTION = {
    "BINPAY_ENV": "production",
    "DJANGO_SECRET_KEY": "x" * 50,
    "DJANGO_ALLOWED_HOSTS": "initiator.example",
    "PAYMENT_GATEWAY_API_KEY": "sk_live_x",
    "PAYMENT_GATEWAY_URL": "https://gateway.example",
}


class SeedDemoInProductionTests(TransactionTestCase):
    def test_seed_demo_refuses_production_and_writes_nothing(self) -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", "seed_demo"],
            cwd=INITIATOR_DIR,
            env=child_env(**PRODUCTION),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertNotEqual(result.returncode, 0, result.stdout)
        self.assertIn("seed_demo refuses BINPAY_ENV=production", result.stderr)
        self.assertNotIn("bpk_", result.stdout + result.stderr)
        self.assertEqual((User.objects.count(), ApiKey.objects.count()), (0, 0))


class CreateApiKeyOutputTests(TestCase):
    def test_not_a_terminal_and_no_destination_is_refused_and_nothing_is_written(self) -> None:
        output = io.StringIO()
        with self.assertRaisesMessage(CommandError, "not a terminal"):
            call_command("create_api_key", "--name", "ops", stdout=output, stderr=io.StringIO())
        self.assertEqual(output.getvalue(), "")
        self.assertEqual(ApiKey.objects.count(), 0)

    def test_output_file_is_created_with_mode_0600_and_stdout_shows_only_id_and_prefix(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "key"
            output = io.StringIO()
            call_command("create_api_key", "--name", "ops", "--output", str(path), stdout=output, stderr=io.StringIO())
            raw_key = path.read_text().strip()
            self.assertEqual(path.stat().st_mode & 0o777, 0o600)
            api_key = ApiKey.objects.get(key_hash=hash_api_key(raw_key))
            self.assertNotIn(raw_key, output.getvalue())
            self.assertIn(f"API key {api_key.pk} ({api_key.prefix}", output.getvalue())
            # Never over an existing file (it may be another key).
            with self.assertRaisesMessage(CommandError, "exists"):
                call_command("create_api_key", "--name", "again", "--output", str(path), stdout=io.StringIO())
            self.assertEqual(ApiKey.objects.count(), 1)

    def test_keys_expire_after_90_days_by_default(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            call_command("create_api_key", "--name", "ops", "--output", f"{directory}/k", stdout=io.StringIO())
        expires = ApiKey.objects.get().expires_at
        self.assertIsNotNone(expires)
        self.assertAlmostEqual((expires - timezone.now()).total_seconds(), timedelta(days=90).total_seconds(), delta=60)


class CreateApiKeyTerminalTests(TransactionTestCase):
    def test_a_terminal_is_shown_the_key(self) -> None:
        # A real pseudo-terminal: what an operator's `kubectl exec -it` or shell gives the command.
        controller, terminal = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "manage.py", "create_api_key", "--name", "tty"],
            cwd=INITIATOR_DIR,
            env=child_env(),
            stdout=terminal,
            stderr=subprocess.PIPE,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        self.assertEqual(process.wait(timeout=60), 0, process.stderr.read())
        os.close(controller)
        raw_key = shown.decode().strip().splitlines()[-1].strip()
        self.assertTrue(raw_key.startswith("bpk_"), shown)


class CreateApiKeySecretManagerTests(TransactionTestCase):
    """Over real HTTP with the official client (REST transport) against a stand-in: see testing/fake_secret_manager.py."""

    def setUp(self) -> None:
        self.secret_manager = FakeSecretManager({"binpay-ops-key"})
        self.addCleanup(self.secret_manager.stop)

    def run_command(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", "create_api_key", "--name", "ops", *args],
            cwd=INITIATOR_DIR,
            env=child_env(PROJECT_ID="binpay-test", SECRET_MANAGER_API_ENDPOINT=self.secret_manager.url),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_the_key_becomes_a_new_version_of_the_secret_and_only_id_and_prefix_are_printed(self) -> None:
        result = self.run_command("--secret-id", "binpay-ops-key")

        self.assertEqual(result.returncode, 0, result.stderr)
        [raw_key] = [version.decode() for version in self.secret_manager.versions["binpay-ops-key"]]
        api_key = ApiKey.objects.get(key_hash=hash_api_key(raw_key))
        self.assertNotIn(raw_key, result.stdout + result.stderr)
        self.assertIn(api_key.prefix, result.stdout)
        self.assertIn("projects/binpay-test/secrets/binpay-ops-key/versions/1", result.stdout)

    def test_an_unknown_secret_is_refused_and_no_key_is_created(self) -> None:
        result = self.run_command("--secret-id", "no-such-secret")

        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no-such-secret", result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(ApiKey.objects.count(), 0)

    def test_secret_id_and_output_are_exclusive(self) -> None:
        result = self.run_command("--secret-id", "binpay-ops-key", "--output", "/tmp/x")
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(ApiKey.objects.count(), 0)
