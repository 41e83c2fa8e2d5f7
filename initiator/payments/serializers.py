from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import (
    PRINTABLE_SCHEMA_PATTERN,
    AmountField,
    CurrencyField,
    IdField,
    PrintableCharField,
    ProviderIdField,
    StrictSerializer,
    has_unprintable,
)
from payments.models import Payment, PaymentStatus

# Stripe's metadata limits.
METADATA_MAX_KEYS = 50
METADATA_KEY_MAX_LENGTH = 40
METADATA_VALUE_MAX_LENGTH = 500


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": METADATA_MAX_KEYS,
        "additionalProperties": {
            "type": "string",
            "maxLength": METADATA_VALUE_MAX_LENGTH,
            "pattern": PRINTABLE_SCHEMA_PATTERN,
        },
    }
)
class MetadataField(serializers.DictField):
    """OpenAPI 3.0 cannot describe the keys (no propertyNames): their limits are in the description."""

    def __init__(self, **kwargs) -> None:
        super().__init__(
            child=PrintableCharField(max_length=METADATA_VALUE_MAX_LENGTH, allow_blank=True, trim_whitespace=False),
            **kwargs,
        )

    def to_internal_value(self, data):
        metadata = super().to_internal_value(data)
        if len(metadata) > METADATA_MAX_KEYS:
            raise serializers.ValidationError(f"metadata allows at most {METADATA_MAX_KEYS} keys.")
        for key in metadata:
            if not key or len(key) > METADATA_KEY_MAX_LENGTH:
                raise serializers.ValidationError(f"metadata keys must be 1 to {METADATA_KEY_MAX_LENGTH} characters.")
            if has_unprintable(key):
                raise serializers.ValidationError(
                    "metadata keys must not contain control characters or unpaired surrogates."
                )
        return metadata


class PaymentInitiateInputSerializer(StrictSerializer):
    user_id = IdField(help_text="The paying user; a user-bound key may name only its own user.")
    amount = AmountField()
    currency = CurrencyField(required=False, help_text="ISO 4217 code, upper case; default DEFAULT_CURRENCY.")
    payment_method = ProviderIdField(
        required=False,
        help_text="The provider's payment method to charge (Stripe: pm_...); default: the user's default_payment_method.",
    )
    metadata = MetadataField(
        required=False,
        help_text=(
            f"Up to {METADATA_MAX_KEYS} keys ({METADATA_KEY_MAX_LENGTH} characters) with string values "
            f"({METADATA_VALUE_MAX_LENGTH} characters), no control characters; form: metadata[key]=value."
        ),
    )


class PaymentLinksSerializer(serializers.Serializer):
    self = serializers.CharField()


class PaymentOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=PaymentStatus.choices)
    user_id = serializers.IntegerField()
    amount = serializers.IntegerField(help_text="Minor units.")
    currency = serializers.CharField()
    failure_reason = serializers.CharField(allow_null=True)
    charge_id = serializers.CharField(allow_null=True)
    payment_method = serializers.CharField(help_text="The provider's payment method charged.")
    metadata = serializers.DictField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    links = serializers.SerializerMethodField()

    def get_object(self, payment: Payment) -> str:
        return "payment"

    @extend_schema_field(PaymentLinksSerializer)
    def get_links(self, payment: Payment) -> dict:
        return {"self": payment_path(payment)}


def payment_path(payment: Payment) -> str:
    return f"/payments/{payment.pk}"


# What an API client sees of a step's detail (contracts/saga-log/step.schema.json): outcome codes and the
# provider's ids (failure_reason is the provider's refund failure code). Who settled a payment by hand, why,
# event ids and diagnostic text (provider errors) are for staff, in the console.
PUBLIC_STEP_DETAIL = (
    "intent_id",
    "charge_id",
    "refund_id",
    "refund_status",
    "reason_code",
    "failure_reason",
    "source",
)


def public_saga_log(log: dict | None) -> dict | None:
    if log is None:
        return None
    steps = [
        {**step, "detail": {key: step["detail"][key] for key in PUBLIC_STEP_DETAIL if key in (step["detail"] or {})}}
        for step in log["steps"]
    ]
    return {**log, "steps": steps}


class SagaStepSerializer(serializers.Serializer):
    step = serializers.CharField()
    seq = serializers.IntegerField()
    at = serializers.DateTimeField(allow_null=True)
    service = serializers.CharField()
    detail = serializers.DictField()


class SagaLogSerializer(serializers.Serializer):
    state = serializers.CharField()
    version = serializers.IntegerField()
    steps = SagaStepSerializer(many=True)


class PaymentDetailOutputSerializer(PaymentOutputSerializer):
    saga_log = SagaLogSerializer(allow_null=True, help_text="The Firestore saga log; null before the first step.")


class PaymentListOutputSerializer(serializers.Serializer):
    object = serializers.CharField()
    url = serializers.CharField()
    data = PaymentOutputSerializer(many=True)
    has_more = serializers.BooleanField()
