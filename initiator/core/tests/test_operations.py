import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

from django.core.management import call_command
from django.test import Client, TestCase, override_settings

from accounts.models import Account, User
from core.models import ApiKey, hash_api_key
from testing.fixtures import INITIATOR_DIR

OPENAPI_FILE = INITIATOR_DIR / "openapi.json"


class HealthTests(TestCase):
    def test_healthz_needs_no_key(self) -> None:
        response = Client(HTTP_HOST="localhost").get("/healthz")
        self.assertEqual((response.status_code, response.json()), (200, {"status": "ok"}))

    def test_readyz_reports_the_database(self) -> None:
        response = Client(HTTP_HOST="localhost").get("/readyz")
        self.assertEqual((response.status_code, response.json()["checks"]), (200, {"database": "ok"}))

    def test_readyz_is_503_when_the_database_is_unreachable(self) -> None:
        with mock.patch("core.views.connection.cursor", side_effect=Exception("connection refused")):
            response = Client(HTTP_HOST="localhost").get("/readyz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["checks"], {"database": "unreachable"})

    @override_settings(DEBUG=False, ALLOWED_HOSTS=["initiator.example.com"], SECURE_SSL_REDIRECT=True)
    def test_probes_answer_any_host_while_the_api_still_checks_it(self) -> None:
        pod_ip = Client(HTTP_HOST="10.8.0.12:8080")

        self.assertEqual((pod_ip.get("/healthz").status_code, pod_ip.get("/healthz").json()), (200, {"status": "ok"}))
        self.assertEqual(pod_ip.get("/readyz").status_code, 200)
        self.assertEqual(pod_ip.get("/users").status_code, 400)
        self.assertEqual(pod_ip.post("/healthz").status_code, 400)
        served = Client(HTTP_HOST="initiator.example.com", HTTP_X_FORWARDED_PROTO="https")
        self.assertEqual(served.get("/users", secure=True).status_code, 401)


class OpenApiDriftTests(TestCase):
    """The committed openapi.json must match the code.

    Regenerate after an API change, from initiator/:
        python manage.py spectacular --format openapi-json --file openapi.json --validate
    """

    def test_served_schema_matches_the_committed_file(self) -> None:
        served = Client(HTTP_HOST="localhost").get("/openapi.json")
        self.assertEqual(served.status_code, 200)
        self.assertEqual(
            json.loads(served.content),
            json.loads(OPENAPI_FILE.read_text()),
            "openapi.json is stale: regenerate it (see this test's docstring)",
        )

    def test_generated_schema_matches_the_committed_file(self) -> None:
        output = io.StringIO()
        call_command("spectacular", "--format", "openapi-json", "--validate", stdout=output, stderr=io.StringIO())
        self.assertEqual(json.loads(output.getvalue()), json.loads(OPENAPI_FILE.read_text()))


class MigrationTests(TestCase):
    def test_models_and_migrations_agree(self) -> None:
        call_command("makemigrations", "--check", "--dry-run", verbosity=0)


class ApiKeyCommandTests(TestCase):
    @staticmethod
    def create_key(name: str) -> str:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "key"
            call_command("create_api_key", "--name", name, "--output", str(path), stdout=io.StringIO())
            return path.read_text().strip()

    def test_create_api_key_writes_the_key_once_and_stores_only_its_hash(self) -> None:
        raw_key = self.create_key("ops")

        api_key = ApiKey.objects.get(name="ops")
        self.assertTrue(raw_key.startswith("bpk_"))
        self.assertGreaterEqual(len(raw_key), 40)
        self.assertEqual(api_key.key_hash, hash_api_key(raw_key))
        self.assertNotIn(
            raw_key, json.dumps(list(ApiKey.objects.values()), default=str), "the raw key must not be stored"
        )
        response = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {raw_key}").get("/users")
        self.assertEqual(response.status_code, 200)

    def test_revoked_key_is_refused(self) -> None:
        raw_key = self.create_key("old")
        ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
        response = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {raw_key}").get("/users")
        self.assertEqual(response.status_code, 401)


class SeedDemoTests(TestCase):
    def test_seed_demo_is_idempotent_and_registers_the_given_key(self) -> None:
        for _ in range(2):
            call_command("seed_demo", "--api-key", "bpk_demo_known_key", stdout=io.StringIO())

        user = User.objects.get()
        account = Account.objects.get(user=user)
        self.assertEqual((account.currency, account.balance, account.held), ("USD", 1_000_000, 0))
        self.assertEqual(ApiKey.objects.count(), 1)
        response = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION="Bearer bpk_demo_known_key").get(
            f"/users/{user.pk}"
        )
        self.assertEqual(response.json()["account"]["available"], 1_000_000)

    def test_seed_demo_without_a_key_creates_one_only_once(self) -> None:
        first, second = io.StringIO(), io.StringIO()
        call_command("seed_demo", stdout=first)
        call_command("seed_demo", stdout=second)
        self.assertIn("shown once", first.getvalue())
        self.assertNotIn("bpk_", second.getvalue())
        self.assertEqual(ApiKey.objects.count(), 1)


class ProductionSettingsTests(TestCase):
    def run_check(self, **env: str) -> subprocess.CompletedProcess:
        # Empty values count as unset and keep a developer's .env from filling them in.
        unset = {
            name: ""
            for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS", "PAYMENT_GATEWAY_API_KEY")
        }
        return subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=INITIATOR_DIR,
            env={
                **os.environ,
                **unset,
                "DJANGO_SETTINGS_MODULE": "binpay_initiator.settings",
                "BINPAY_ENV": "production",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_production_refuses_to_start_without_secrets(self) -> None:
        result = self.run_check()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("DJANGO_SECRET_KEY", result.stderr)
        self.assertIn("PAYMENT_GATEWAY_API_KEY", result.stderr)

    def test_production_refuses_fault_injection(self) -> None:
        result = self.run_check(
            DJANGO_SECRET_KEY="x" * 50,
            DATABASE_URL=f"sqlite:///{Path(INITIATOR_DIR) / 'unused.sqlite3'}",
            DJANGO_ALLOWED_HOSTS="initiator.example",
            PAYMENT_GATEWAY_API_KEY="sk_live_x",
            PAYMENT_GATEWAY_URL="https://gateway.example",
            FAULT_INJECTION_ENABLED="true",
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("FAULT_INJECTION_ENABLED", result.stderr)

    def test_production_starts_with_secrets_and_debug_off(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
            ],
            cwd=INITIATOR_DIR,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "binpay_initiator.settings",
                "BINPAY_ENV": "production",
                "DJANGO_SECRET_KEY": "x" * 50,
                "DATABASE_URL": f"sqlite:///{Path(INITIATOR_DIR) / 'unused.sqlite3'}",
                "DJANGO_ALLOWED_HOSTS": "initiator.example",
                "PAYMENT_GATEWAY_API_KEY": "sk_live_x",
                "PAYMENT_GATEWAY_URL": "https://gateway.example",
                "DJANGO_DEBUG": "true",
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        # The last line: a log line may come first (e.g. tracing off without Cloud Trace credentials here).
        self.assertEqual(result.stdout.strip().splitlines()[-1], "False")
