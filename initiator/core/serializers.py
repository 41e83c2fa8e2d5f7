from rest_framework import serializers

CURRENCY_REGEX = r"^[A-Za-z]{3}$"


class CurrencyField(serializers.RegexField):
    """An ISO 4217 alphabetic code; upper-cased."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("error_messages", {"invalid": "currency must be a three-letter ISO 4217 code."})
        super().__init__(CURRENCY_REGEX, **kwargs)

    def to_internal_value(self, data):
        return super().to_internal_value(data).upper()


class AmountField(serializers.CharField):
    """A positive decimal string in major units, e.g. "100.00"; converted to minor units by the service."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 32)
        kwargs.setdefault("help_text", 'Decimal string in major units, e.g. "100.00".')
        super().__init__(**kwargs)


class ErrorDetailSerializer(serializers.Serializer):
    type = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
