"""JSON log lines with GCP severity, ids from the context, secrets redacted (unit tests)."""

from __future__ import annotations

import io
import json
import logging

import pytest
from binpay_processor.logs import ContextFilter, GcpJsonFormatter, RedactionFilter, log_context


@pytest.fixture
def capture():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(GcpJsonFormatter("%(message)s %(levelname)s %(name)s %(asctime)s"))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter(["sk_live_secret"]))
    logger = logging.getLogger("binpay_processor.test_logging")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_lines_are_json_with_severity_and_ids(capture):
    logger, lines = capture
    with log_context(correlation_id="corr-9", payment_id="pay-9"):
        logger.warning("charge %s declined", "ch_1")
    logger.critical("outside")

    first, second = lines()
    assert first["message"] == "charge ch_1 declined"
    assert (first["severity"], first["correlation_id"], first["payment_id"]) == ("WARNING", "corr-9", "pay-9")
    assert first["logger"] == "binpay_processor.test_logging" and first["time"].endswith("+00:00")
    assert (second["severity"], second["payment_id"]) == ("CRITICAL", None)


def test_secrets_and_bearer_tokens_are_redacted(capture):
    logger, lines = capture
    logger.error("calling gateway with Authorization: Bearer abc.def-ghi and key %s", "sk_live_secret")

    [line] = lines()
    assert "abc.def-ghi" not in line["message"] and "sk_live_secret" not in line["message"]
    assert line["message"].count("[REDACTED]") == 2
