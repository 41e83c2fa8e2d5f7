"""Issue 22 (L6): production refuses a plain-HTTP gateway and a test-mode gateway key unless the deployment
says it is a sandbox (PAYMENT_GATEWAY_ALLOW_SANDBOX=true), and on Cloud Run or Kubernetes BINPAY_ENV
must be said, not defaulted to development."""

import os
import subprocess
import sys
from pathlib import Path

from django.test import SimpleTestCase

from testing.fixtures import INITIATOR_DIR

SECRETS = {
    "DJANGO_SECRET_KEY": "x" * 50,
    "DATABASE_URL": f"sqlite:///{Path(INITIATOR_DIR) / 'unused.sqlite3'}",
    "DJANGO_ALLOWED_HOSTS": "initiator.example",
}
LIVE = {"PAYMENT_GATEWAY_URL": "https://api.stripe.com", "PAYMENT_GATEWAY_API_KEY": "sk_live_x"}


def start(**env: str) -> subprocess.CompletedProcess:
    base = {name: value for name, value in os.environ.items() if name not in ("BINPAY_ENV",)}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=INITIATOR_DIR,
        env={**base, "DJANGO_SETTINGS_MODULE": "binpay_initiator.settings", "OTEL_TRACES_EXPORTER": "none", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


class ProductionGatewayTests(SimpleTestCase):
    def test_a_live_gateway_over_https_starts(self) -> None:
        result = start(BINPAY_ENV="production", **SECRETS, **LIVE)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_without_a_gateway_url_production_talks_to_the_provider_not_localhost(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup(); from django.conf import settings; print(settings.PAYMENT_GATEWAY_URL)",
            ],
            cwd=INITIATOR_DIR,
            env={
                **{name: value for name, value in os.environ.items() if name != "PAYMENT_GATEWAY_URL"},
                "DJANGO_SETTINGS_MODULE": "binpay_initiator.settings",
                "OTEL_TRACES_EXPORTER": "none",
                "BINPAY_ENV": "production",
                "PAYMENT_GATEWAY_API_KEY": "sk_live_x",
                **SECRETS,
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip().splitlines()[-1], "https://api.stripe.com")

    def test_plain_http_and_test_keys_are_refused(self) -> None:
        for override, named in (
            ({"PAYMENT_GATEWAY_URL": "http://gateway.internal:8090"}, "PAYMENT_GATEWAY_URL"),
            ({"PAYMENT_GATEWAY_API_KEY": "sk_test_abc"}, "PAYMENT_GATEWAY_API_KEY"),
            ({"PAYMENT_GATEWAY_API_KEY": "rk_test_abc"}, "PAYMENT_GATEWAY_API_KEY"),
        ):
            result = start(BINPAY_ENV="production", **SECRETS, **{**LIVE, **override})
            self.assertNotEqual(result.returncode, 0, override)
            self.assertIn(named, result.stderr)
            self.assertIn("PAYMENT_GATEWAY_ALLOW_SANDBOX", result.stderr)

    def test_a_declared_sandbox_deployment_may_use_them(self) -> None:
        result = start(
            BINPAY_ENV="production",
            **SECRETS,
            PAYMENT_GATEWAY_URL="http://gateway.internal:8090",
            PAYMENT_GATEWAY_API_KEY="sk_test_abc",
            PAYMENT_GATEWAY_ALLOW_SANDBOX="true",
        )
        self.assertEqual(result.returncode, 0, result.stderr)


class PlatformEnvironmentTests(SimpleTestCase):
    def test_on_a_platform_binpay_env_must_be_set(self) -> None:
        for marker in ("K_SERVICE", "CLOUD_RUN_JOB", "KUBERNETES_SERVICE_HOST"):
            result = start(BINPAY_ENV="", **{marker: "x"})
            self.assertNotEqual(result.returncode, 0, marker)
            self.assertIn("BINPAY_ENV", result.stderr)

    def test_development_on_a_platform_must_be_said(self) -> None:
        self.assertEqual(start(BINPAY_ENV="development", KUBERNETES_SERVICE_HOST="10.0.0.1").returncode, 0)
