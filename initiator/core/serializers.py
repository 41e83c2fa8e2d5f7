"""Strict input fields: what the OpenAPI document says is exactly what they accept."""

import re
import unicodedata
from collections.abc import Mapping

from django.core.validators import RegexValidator
from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.models import BIGINT_MAX
from core.money import AMOUNT_SCHEMA_PATTERN, CURRENCY_EXPONENTS, AmountError, check_decimal_string

_FORM_INTEGER = re.compile(r"[0-9]{1,19}", re.ASCII)
# Control characters (NUL, ESC, ...) and unpaired surrogates: PostgreSQL refuses them, and they are
# not text anyone means to store.
_UNPRINTABLE_CATEGORIES = {"Cc", "Cs"}
PRINTABLE_SCHEMA_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"


def has_unprintable(value: str) -> bool:
    return any(unicodedata.category(char) in _UNPRINTABLE_CATEGORIES for char in value)


def form_to_payload(data, *, integer_fields: tuple[str, ...] = ()) -> dict:
    """A form body as the JSON body it stands for: metadata[key]=value (Stripe-style) becomes a
    metadata object, and integer fields made of digits become integers (JSON bodies must send numbers)."""
    if not isinstance(data, QueryDict):
        return data
    payload: dict = {}
    metadata: dict[str, str] = {}
    for key in data:
        value = data[key]
        if key.startswith("metadata[") and key.endswith("]"):
            metadata[key[len("metadata[") : -1]] = value
        elif key in integer_fields and _FORM_INTEGER.fullmatch(value):
            payload[key] = int(value)
        else:
            payload[key] = value
    if metadata:
        payload["metadata"] = metadata
    return payload


class StrictSerializer(serializers.Serializer):
    """A request body. A parameter not listed here is refused (400)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            for key in data:
                if key not in self.fields:
                    raise serializers.ValidationError({key: ["Received unknown parameter."]})
        return super().to_internal_value(data)


class PrintableCharField(serializers.CharField):
    """A JSON string (not a number) without control characters or unpaired surrogates."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # Also puts the pattern in the OpenAPI document.
        self.validators.append(RegexValidator(PRINTABLE_SCHEMA_PATTERN))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if has_unprintable(value):
            raise serializers.ValidationError("Control characters and unpaired surrogates are not allowed.")
        return value


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": BIGINT_MAX})
class IdField(serializers.IntegerField):
    """A database id: a JSON integer (not a string, float or boolean)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=1, max_value=BIGINT_MAX, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


PROVIDER_ID_PATTERN = r"^[A-Za-z0-9_]{1,255}$"


class ProviderIdField(serializers.RegexField):
    """An id of the payment provider's (Stripe: pm_..., cus_...): letters, digits and underscores.

    Only its shape is checked here; whether the provider knows it is its answer to the charge.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(
            "error_messages", {"invalid": "Must be the provider's id: letters, digits and _, at most 255 characters."}
        )
        super().__init__(PROVIDER_ID_PATTERN, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "enum": sorted(CURRENCY_EXPONENTS)})
class CurrencyField(serializers.RegexField):
    """An upper-case ISO 4217 alphabetic code; one BinPay does not hold is refused later (422)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(
            "error_messages", {"invalid": "currency must be an upper-case three-letter ISO 4217 code, e.g. USD."}
        )
        kwargs.setdefault("help_text", "ISO 4217 code, upper case.")
        super().__init__(r"^[A-Z]{3}$", **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "pattern": AMOUNT_SCHEMA_PATTERN, "example": "100.00"})
class AmountField(serializers.Field):
    """A positive decimal string in major units, e.g. "100.00"; the currency's exponent is checked with the
    currency (core.money.to_minor_units)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(
            "help_text",
            'Decimal string in major units, e.g. "100.00": ASCII digits, at most the currency\'s number of '
            "decimals (USD 2, JPY 0, KWD 3); no sign, exponent, separators or spaces.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return check_decimal_string(data)
        except AmountError as error:
            raise serializers.ValidationError(str(error)) from None

    def to_representation(self, value):
        return value


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
