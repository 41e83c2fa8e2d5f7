"""Decimal strings at the API edge ⇄ integer minor units everywhere else."""

from decimal import Decimal, InvalidOperation

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


class AmountError(ValueError):
    pass


def is_supported_currency(currency: str) -> bool:
    return currency in CURRENCY_EXPONENTS


def to_minor_units(amount: str, currency: str) -> int:
    """ "100.00" USD → 10000. Raises AmountError for non-decimals, non-positive values or too many places."""
    exponent = CURRENCY_EXPONENTS[currency]
    try:
        value = Decimal(amount.strip())
    except (InvalidOperation, AttributeError) as error:
        raise AmountError(f"Invalid amount {amount!r}: use a decimal string like '100.00'.") from error
    if not value.is_finite() or "e" in amount.lower():
        raise AmountError(f"Invalid amount {amount!r}: use a decimal string like '100.00'.")
    if value <= 0:
        raise AmountError("Amount must be positive.")
    if -value.as_tuple().exponent > exponent:
        raise AmountError(f"{currency} amounts allow at most {exponent} decimal place(s).")
    return int(value.scaleb(exponent))


def format_minor_units(amount: int, currency: str) -> str:
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return f"{Decimal(amount).scaleb(-exponent):.{exponent}f} {currency}"
