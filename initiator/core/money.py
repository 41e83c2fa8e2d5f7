"""Decimal strings at the API edge ⇄ integer minor units everywhere else."""

import re
from decimal import Decimal

# ISO 4217 alphabetic code → minor-unit exponent, for the currencies BinPay accounts can hold.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AUD": 2,
    "BHD": 3,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "INR": 2,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PLN": 2,
    "SEK": 2,
    "SGD": 2,
    "USD": 2,
    "ZAR": 2,
}

# Largest single payment, in major units: about USD 10,000 in each currency, rounded. A deposit may
# be ten times that. Override per currency with PAYMENT_MAX_AMOUNTS / DEPOSIT_MAX_AMOUNTS.
DEFAULT_PAYMENT_MAX_MAJOR: dict[str, int] = {
    "AUD": 15_000,
    "BHD": 3_800,
    "CAD": 14_000,
    "CHF": 9_000,
    "CNY": 70_000,
    "CZK": 230_000,
    "DKK": 65_000,
    "EUR": 9_000,
    "GBP": 8_000,
    "HKD": 78_000,
    "INR": 850_000,
    "JOD": 7_000,
    "JPY": 1_500_000,
    "KRW": 14_000_000,
    "KWD": 3_000,
    "MXN": 180_000,
    "NOK": 100_000,
    "NZD": 17_000,
    "OMR": 3_800,
    "PLN": 40_000,
    "SEK": 100_000,
    "SGD": 13_000,
    "USD": 10_000,
    "ZAR": 180_000,
}
DEFAULT_DEPOSIT_MAX_MAJOR: dict[str, int] = {
    currency: 10 * limit for currency, limit in DEFAULT_PAYMENT_MAX_MAJOR.items()
}

# ASCII digits only (no "+", "_", exponent, whitespace or other scripts' digits), no leading zeros.
# At most 3 decimals: the largest exponent in CURRENCY_EXPONENTS.
_DECIMAL_STRING = re.compile(r"(0|[1-9][0-9]{0,15})(?:\.([0-9]{1,3}))?", re.ASCII)
# The same, minus zero, for the OpenAPI document (ECMA-262 regex, no lookahead).
AMOUNT_SCHEMA_PATTERN = r"^(?:[1-9][0-9]{0,15}(?:\.[0-9]{1,3})?|0\.(?:[1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9]))$"
AMOUNT_HINT = "use a decimal string like '100.00'"


class AmountError(ValueError):
    pass


def is_supported_currency(currency: str) -> bool:
    return currency in CURRENCY_EXPONENTS


def check_decimal_string(amount: object) -> str:
    """The syntax every amount must have, whatever its currency."""
    if not isinstance(amount, str):
        raise AmountError(f"Invalid amount {amount!r}: {AMOUNT_HINT} (a string, not a number).")
    if not _DECIMAL_STRING.fullmatch(amount):
        raise AmountError(f"Invalid amount {amount!r}: {AMOUNT_HINT}.")
    return amount


def to_minor_units(amount: str, currency: str) -> int:
    """ "100.00" USD → 10000. Raises AmountError for anything but a positive decimal string with at most
    the currency's number of decimals."""
    match = _DECIMAL_STRING.fullmatch(check_decimal_string(amount))
    exponent = CURRENCY_EXPONENTS[currency]
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        raise AmountError(f"{currency} amounts allow at most {exponent} decimal place(s).")
    value = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
    if value <= 0:
        raise AmountError("Amount must be positive.")
    return value


def format_minor_units(amount: int, currency: str) -> str:
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return f"{Decimal(amount).scaleb(-exponent):.{exponent}f} {currency}"


def amount_limits(overrides: str, defaults: dict[str, int]) -> dict[str, int]:
    """Per-currency limits in minor units: the defaults (major units) with "USD=10000,JPY=1500000" on top."""
    limits = {currency: major * 10 ** CURRENCY_EXPONENTS[currency] for currency, major in defaults.items()}
    for item in filter(None, (part.strip() for part in overrides.split(","))):
        currency, _, major = item.partition("=")
        currency = currency.strip()
        if not is_supported_currency(currency):
            raise ValueError(f"{item!r}: unsupported currency {currency!r}")
        try:
            limits[currency] = to_minor_units(major.strip(), currency)
        except AmountError as error:
            raise ValueError(f"{item!r}: {error}") from None
    return limits
