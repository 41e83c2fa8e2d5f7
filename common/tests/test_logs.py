"""binpay_common.logs: one JSON line per record, with severity, the context's ids and trace, and no secret."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from binpay_common.logs import (
    ContextFilter,
    JsonFormatter,
    configure_logging,
    is_secret_setting,
    log_context,
    secret_values,
)
from opentelemetry.sdk.trace import TracerProvider

REPO = Path(__file__).resolve().parents[2]
COMMON = REPO / "common"
# Settings whose names look like credentials but are not secrets.
NOT_SECRETS = {
    "API_KEY_LAST_USED_INTERVAL_SECONDS": "how often an API key's last use is written",
    "API_KEY_DEFAULT_EXPIRY_DAYS": "how long a new API key lives by default",
    "IDEMPOTENCY_KEY_TTL_HOURS": "how long an idempotency record is kept (purge_expired)",
    "RATE_LIMIT_KEY_READ": "requests per window one API key may read (a budget, not a key)",
    "RATE_LIMIT_KEY_WRITE": "requests per window one API key may write (a budget, not a key)",
    "SECRET_MANAGER_API_ENDPOINT": "where create_api_key --secret-id reaches Secret Manager (tests: a local fake)",
}
_LOOKS_LIKE_A_CREDENTIAL = re.compile(r"KEY|SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|DSN|AUTH")
_ENV_READ = re.compile(
    r"""(?:env_(?:str|int|float|bool)|environ\.get|getenv|environ\[)\(?\s*["']([A-Z][A-Z0-9_]+)["']"""
)
_SETTINGS_FIELD = re.compile(r"^    ([a-z][a-z0-9_]*): [^=]+=", re.MULTILINE)


def settings_read_by_the_services() -> set[str]:
    """Every environment variable the services' code reads (tests aside), and the processor's Settings fields."""
    names = set()
    for folder in ("initiator", "processor", "common/binpay_common"):
        for path in (REPO / folder).rglob("*.py"):
            relative = path.relative_to(REPO).parts
            if {"tests", "testing", ".venv"} & set(relative) or relative[1:2] == ("binpay_common",):
                continue
            names.update(_ENV_READ.findall(path.read_text()))
    config = (REPO / "processor" / "binpay_processor" / "config.py").read_text()
    settings_class = config[config.index("class Settings") : config.index("    @property")]
    names.update(field.upper() for field in _SETTINGS_FIELD.findall(settings_class))
    return names


def secret_settings() -> list[str]:
    return sorted(name for name in settings_read_by_the_services() if is_secret_setting(name) or name.endswith("_URL"))


def format_line(formatter: JsonFormatter, message: str, *args, exc_info=None, **extra) -> dict:
    record = logging.LogRecord("payments.test", logging.WARNING, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(record, key, value)
    ContextFilter().filter(record)
    return json.loads(formatter.format(record))


# -- every secret setting ---------------------------------------------------------------------------


def test_the_scan_finds_the_settings_it_must() -> None:
    """The scan reads both services (or the tests below would check nothing)."""
    found = settings_read_by_the_services()
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "PAYMENT_GATEWAY_API_KEY", "LOG_LEVEL", "LEASE_SECONDS"} <= found


def test_every_setting_named_like_a_credential_is_redacted_or_known_not_to_be_secret() -> None:
    undecided = {
        name
        for name in settings_read_by_the_services()
        if _LOOKS_LIKE_A_CREDENTIAL.search(name) and not is_secret_setting(name) and name not in NOT_SECRETS
    }
    assert undecided == set(), (
        "redact these (name them *_KEY, *_SECRET, *_PASSWORD, *_TOKEN) or list them in NOT_SECRETS"
    )


def test_no_secret_settings_value_reaches_a_log_line_of_a_configured_process() -> None:
    """A process with every secret setting set logs their values every way a service could (message,
    arguments, extra fields, nested data, an exception's text and traceback): none reaches stdout."""
    names = secret_settings()
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "PAYMENT_GATEWAY_API_KEY"} <= set(names)
    hidden, environment = {}, {}
    for name in names:
        secret = uuid.uuid4().hex
        hidden[name] = secret
        environment[name] = f"postgres://binpay:{secret}@10.1.2.3:5432/binpay" if name.endswith("_URL") else secret
    program = """
import json, logging, os, sys
from binpay_common.logs import configure_logging

configure_logging("INFO")
log = logging.getLogger("binpay.test")
values = {name: os.environ[name] for name in json.loads(sys.argv[1])}
for name, value in values.items():
    log.info("setting %s is %s", name, value)
    log.warning("in the message: " + value)
    log.info("as extra", extra={"setting": value, "nested": {"deep": [value]}})
    try:
        raise RuntimeError(f"could not connect with {value}")
    except RuntimeError:
        log.exception("failed")
"""
    output = subprocess.run(
        [sys.executable, "-c", program, json.dumps(names)],
        cwd=COMMON,
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    lines = [json.loads(line) for line in output.splitlines()]
    assert len(lines) == 4 * len(names)
    leaked = sorted(name for name, secret in hidden.items() if secret in output)
    assert leaked == []
    assert all(line["severity"] in {"INFO", "WARNING", "ERROR"} for line in lines)


def test_secret_values_come_from_secret_names_and_url_passwords() -> None:
    environ = {
        "DJANGO_SECRET_KEY": "django-secret-value",
        "STRIPE_WEBHOOK_SECRET": "whsec_abcdefgh",
        "DB_PASSWORD": "p@ss/word:1",
        "DATABASE_URL": "postgres://binpay:p%40ss%2Fword%3A1@host:5432/db",
        "PAYMENT_GATEWAY_URL": "https://api.example.test",
        "SHORT_KEY": "abc",
        "LOG_LEVEL": "INFO",
    }

    assert secret_values(environ) == {
        "django-secret-value",
        "whsec_abcdefgh",
        "p@ss/word:1",
        "p%40ss%2Fword%3A1",
    }


# -- secrets by their shape -------------------------------------------------------------------------

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2FjY291bnRzLmdvb2dsZS5jb20iLCJhdWQiOiJ4In0"
    ".c2lnbmF0dXJlLXNpZ25hdHVyZQ"
)
SHAPES = {
    "bearer header": ("Authorization: Bearer bp_test_9f8e7d6c5b4a", "bp_test_9f8e7d6c5b4a"),
    "basic header in a dict": ("headers {'Authorization': 'Basic dXNlcjpwYXNz', 'X': '1'}", "dXNlcjpwYXNz"),
    "serverless header": (f"X-Serverless-Authorization: Bearer {JWT}", "c2lnbmF0dXJlLXNpZ25hdHVyZQ"),
    "bearer token alone": ("sent bearer abc.def-ghi to the gateway", "abc.def-ghi"),
    "OIDC token": (f"token {JWT} refused", "eyJpc3MiOiJodHRwczovL2FjY291bnRzLmdvb2dsZS5jb20iLCJhdWQiOiJ4In0"),
    "stripped OIDC token": (f"{JWT.rsplit('.', 1)[0]}.SIGNATURE_REMOVED_BY_GOOGLE", "eyJpc3MiOiJodHRwczovL2Fj"),
    "BinPay API key": ("key bpk_Zm9vYmFyYmF6cXV4 used", "Zm9vYmFyYmF6cXV4"),
    "BinPay dev key": ("key bp_test_q1w2e3r4t5y6 used", "q1w2e3r4t5y6"),
    "Stripe live secret key": ("calling with sk_live_51Habcdefghijklmnop", "51Habcdefghijklmnop"),
    "Stripe restricted key": ("rk_test_51Hzyxwvutsrqponm", "51Hzyxwvutsrqponm"),
    "sandbox key": ("gateway key sk_test_sandbox", "sandbox"),
    "Stripe webhook secret": ("signing with whsec_0123456789abcdef", "0123456789abcdef"),
    "database URL": ("connect postgres://binpay:hunter2hunter2@10.0.0.3:5432/binpay", "hunter2hunter2"),
    "password pair": ("host=db user=binpay password=hunter2hunter2 dbname=binpay", "hunter2hunter2"),
}


@pytest.mark.parametrize("message,secret", list(SHAPES.values()), ids=list(SHAPES))
def test_secrets_are_redacted_by_their_shape(message: str, secret: str) -> None:
    line = format_line(JsonFormatter(), "%s", message)

    assert secret not in json.dumps(line)
    assert "[REDACTED]" in line["message"]


def test_what_is_not_a_secret_stays_readable() -> None:
    readable = [
        "Idempotency-Key: 0b7c1e1e-5d7a-4bd6-9a57-2f1d2c3b4a59",
        "correlation corr-1a2b3c4d5e6f",
        "payment 7d9f4c1a-0c3e-4f6b-8a2d-1e2f3a4b5c6d charged ch_3NqKXJ2eZvKYlo2C",
        "publishable key pk_live_51Habcdefghijklmnop",
        "gateway http://127.0.0.1:8090/v1/charges answered 402",
        "risk_test_score=3 disk_live_bytes=10",
    ]
    line = format_line(JsonFormatter(), " | ".join(readable))

    assert line["message"] == " | ".join(readable)


def test_extra_fields_tracebacks_and_odd_characters_are_redacted_and_the_line_stays_json() -> None:
    try:
        raise ValueError('failed with "Authorization": "Bearer abc\\"def" and sk_live_51Hqwertyuiop\n')
    except ValueError:
        line = format_line(
            JsonFormatter(secrets=["configured-secret-1"]),
            'quote " backslash \\ newline \n and %s',
            "configured-secret-1",
            exc_info=sys.exc_info(),
            request={"headers": {"Authorization": "Bearer abcdefgh"}, "keys": ("sk_test_abcdefgh",)},
        )

    text = json.dumps(line)
    for secret in ("configured-secret-1", "abcdefgh", "51Hqwertyuiop"):
        assert secret not in text
    assert "ValueError" in line["exc_info"]


# -- the fields -------------------------------------------------------------------------------------


def test_lines_carry_severity_time_logger_and_the_context_ids() -> None:
    formatter = JsonFormatter()
    with log_context(correlation_id="corr-9", payment_id="pay-9"):
        inside = format_line(formatter, "charge %s declined", "ch_1")
    given = format_line(formatter, "outside", correlation_id="corr-x")
    outside = format_line(formatter, "outside")

    assert {key: inside[key] for key in ("message", "severity", "logger", "correlation_id", "payment_id")} == {
        "message": "charge ch_1 declined",
        "severity": "WARNING",
        "logger": "payments.test",
        "correlation_id": "corr-9",
        "payment_id": "pay-9",
    }
    assert inside["time"].endswith("+00:00")
    assert (given["correlation_id"], "payment_id" in given) == ("corr-x", False)
    assert "correlation_id" not in outside and "payment_id" not in outside


def test_a_current_span_puts_its_trace_on_the_line(monkeypatch) -> None:
    monkeypatch.setenv("PROJECT_ID", "binpay-test")
    formatter = JsonFormatter()
    tracer = TracerProvider().get_tracer("test")

    with tracer.start_as_current_span("handling") as span:
        traced = format_line(formatter, "inside a span")
    untraced = format_line(formatter, "no span")

    context = span.get_span_context()
    assert traced["logging.googleapis.com/trace"] == f"projects/binpay-test/traces/{context.trace_id:032x}"
    assert traced["logging.googleapis.com/spanId"] == f"{context.span_id:016x}"
    assert traced["logging.googleapis.com/trace_sampled"] is True
    assert not [key for key in untraced if key.startswith("logging.googleapis.com/")]


def test_configure_logging_routes_every_logger_through_one_json_handler(monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("info", secrets=["configured-secret-2"])
        configure_logging("info", secrets=["configured-secret-2"])
        handlers = list(root.handlers)
        captured: list[logging.LogRecord] = []
        capture = logging.Handler()
        capture.emit = captured.append
        root.addHandler(capture)
        with log_context(correlation_id="corr-2", payment_id="pay-2"):
            logging.getLogger("werkzeug").warning("a library's line with configured-secret-2")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])

    assert len(handlers) == 1
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["logger"], line["severity"], line["payment_id"]) == ("werkzeug", "WARNING", "pay-2")
    assert "configured-secret-2" not in line["message"]
    # The ids are stamped on the record itself: a later handler (a test's capture) sees them too.
    assert [(record.correlation_id, record.payment_id) for record in captured] == [("corr-2", "pay-2")]
