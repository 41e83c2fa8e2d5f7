"""binpay_common.env: one parsing style for every service's settings, errors naming the variable."""

from __future__ import annotations

import pytest
from binpay_common.env import SettingError, env_bool, env_float, env_int, env_list, env_str


def test_unset_and_empty_values_take_the_default():
    for environ in ({}, {"X": ""}, {"X": "  "}):
        assert env_str("X", "d", environ) == "d"
        assert env_str("X", None, environ) is None
        assert env_int("X", 7, environ) == 7
        assert env_float("X", None, environ) is None
        assert env_bool("X", True, environ) is True
        assert env_list("X", "a,b", environ) == ["a", "b"]


def test_values_are_parsed():
    environ = {"S": " text ", "I": "42", "F": "2.5", "B": "Yes", "L": "a, b,,c "}
    assert env_str("S", "", environ) == "text"
    assert env_int("I", 0, environ) == 42
    assert env_float("F", 0.0, environ) == 2.5
    assert env_bool("B", False, environ) is True
    assert env_bool("B", False, {"B": "off"}) is False
    assert env_list("L", "", environ) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda: env_int("LEASE", 1, {"LEASE": "1.5"}), "LEASE must be a whole number, got '1.5'"),
        (lambda: env_float("RATE", 1.0, {"RATE": "fast"}), "RATE must be a number, got 'fast'"),
        (lambda: env_bool("FLAG", False, {"FLAG": "maybe"}), "FLAG must be true or false, got 'maybe'"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(read, message):
    with pytest.raises(SettingError) as raised:
        read()
    assert str(raised.value) == message


def test_the_process_environment_is_the_default_source(monkeypatch):
    monkeypatch.setenv("BINPAY_TEST_SETTING", "3")
    assert env_int("BINPAY_TEST_SETTING", 0) == 3
