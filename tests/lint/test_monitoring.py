"""The log-based metrics count log lines the services really write.

Each metric's filter names a logger and message patterns; the logger's module must contain a
logging call whose message, rendered with sample arguments, matches every pattern. Renaming a log
message without its metric fails here instead of silently flat-lining an alert.
"""

from __future__ import annotations

import ast
import json
import re

import pytest
from lint_support import REPO

METRICS = sorted((REPO / "monitoring" / "log-metrics").glob("*.json"))
MODULES = {"payments.": REPO / "initiator", "binpay_processor.": REPO / "processor"}
# What a %s stands for when a message is rendered: a plain word, or one of the event types.
SAMPLES = [
    "sample",
    *(path.name.removesuffix(".schema.json") for path in (REPO / "contracts" / "events").glob("*.json")),
]


def module_path(logger: str):
    for prefix, root in MODULES.items():
        if logger.startswith(prefix):
            return root.joinpath(*logger.split(".")).with_suffix(".py")
    raise AssertionError(f"logger {logger} belongs to no BinPay service")


def logged_messages(path) -> list[str]:
    """Every `logger.<level>("format", args...)` in the module, rendered once per sample value."""
    messages = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"debug", "info", "warning", "error", "critical", "exception"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            template = node.args[0].value
            specs = re.findall(r"%[.\d]*([sdf])", template)
            for sample in SAMPLES:
                messages.append(template % tuple(sample if spec == "s" else 1 for spec in specs))
    return messages


def unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal)


@pytest.mark.parametrize("path", METRICS, ids=[path.stem for path in METRICS])
def test_log_metric_matches_a_line_its_service_writes(path):
    metric = json.loads(path.read_text())
    [logger] = re.findall(r'jsonPayload\.logger="([^"]+)"', metric["filter"])
    patterns = [unquote(p) for p in re.findall(r'jsonPayload\.message=~"((?:[^"\\]|\\.)*)"', metric["filter"])]
    messages = logged_messages(module_path(logger))

    assert patterns, f"{path.name}: the filter matches no message"
    for pattern in patterns:
        assert any(re.search(pattern, message) for message in messages), (
            f"{path.name}: {pattern!r} matches nothing {logger} logs: {messages}"
        )
    for label, extractor in metric.get("labelExtractors", {}).items():
        [regex] = [
            unquote(r) for r in re.findall(r'REGEXP_EXTRACT\(jsonPayload\.message, "((?:[^"\\]|\\.)*)"\)', extractor)
        ]
        assert any(re.search(regex, message) for message in messages if re.search(patterns[0], message)), label


def test_alert_policies_and_dashboard_use_defined_metrics():
    defined = {path.stem for path in METRICS}
    texts = [p.read_text() for p in (REPO / "monitoring" / "alert-policies").glob("*.json")]
    texts.append((REPO / "monitoring" / "dashboard.json").read_text())
    used = {name for text in texts for name in re.findall(r"logging\.googleapis\.com/user/(\w+)", text)}
    assert used <= defined, f"undefined log metrics: {used - defined}"
