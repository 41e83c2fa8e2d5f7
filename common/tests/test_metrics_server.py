"""METRICS_PORT parsing and the gunicorn directory (the servers themselves: the services' process tests)."""

import os

import pytest
from binpay_common import metrics_server


def test_metrics_port_defaults_to_9090_and_0_turns_it_off():
    assert metrics_server.metrics_port({}) == 9090
    assert metrics_server.metrics_port({"METRICS_PORT": ""}) == 9090
    assert metrics_server.metrics_port({"METRICS_PORT": "0"}) == 0
    assert metrics_server.metrics_port({"METRICS_PORT": "9464"}) == 9464


@pytest.mark.parametrize("raw", ["x", "-1", "70000", "9090.5"])
def test_a_bad_metrics_port_is_refused(raw):
    with pytest.raises(metrics_server.MetricsConfigError, match="METRICS_PORT"):
        metrics_server.metrics_port({"METRICS_PORT": raw})


def test_each_gunicorn_start_gets_a_fresh_private_directory_under_the_platforms(tmp_path):
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    environ = {metrics_server.MULTIPROC_ENV: str(tmp_path)}
    first = metrics_server.prepare_gunicorn(environ)
    environ_again = {metrics_server.MULTIPROC_ENV: str(tmp_path)}
    second = metrics_server.prepare_gunicorn(environ_again)
    assert first != second and os.path.dirname(first) == str(tmp_path) == os.path.dirname(second)
    assert os.listdir(first) == [] and environ[metrics_server.MULTIPROC_ENV] == first
    metrics_server.remove_gunicorn_dir(environ)
    assert not os.path.exists(first) and (tmp_path / "counter_1.db").exists()
