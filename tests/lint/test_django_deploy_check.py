"""`manage.py check --deploy` in production mode finds nothing to warn about (W004 HSTS, W008 SSL redirect)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from lint_support import REPO


def test_check_deploy_is_clean_in_production(tmp_path) -> None:
    env = {
        **os.environ,
        "BINPAY_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(60),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "initiator-123456789012.us-central1.run.app",
        "PAYMENT_GATEWAY_API_KEY": "sk_live_check_only",
        "PAYMENT_GATEWAY_URL": "https://api.stripe.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO / "initiator",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout
