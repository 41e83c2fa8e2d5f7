from django.http import QueryDict
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.serializers import AmountField, CurrencyField
from payments.models import Payment, PaymentStatus

METADATA_MAX_KEYS = 20
METADATA_KEY_MAX_LENGTH = 40
METADATA_VALUE_MAX_LENGTH = 500


def form_to_payload(data) -> dict:
    """Form bodies carry metadata Stripe-style, as metadata[key]=value."""
    if not isinstance(data, QueryDict):
        return data
    payload: dict = {}
    metadata: dict[str, str] = {}
    for key in data:
        if key.startswith("metadata[") and key.endswith("]"):
            metadata[key[len("metadata[") : -1]] = data[key]
        else:
            payload[key] = data[key]
    if metadata:
        payload["metadata"] = metadata
    return payload


class PaymentInitiateInputSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1)
    amount = AmountField()
    currency = CurrencyField(required=False)
    metadata = serializers.DictField(
        child=serializers.CharField(max_length=METADATA_VALUE_MAX_LENGTH, allow_blank=True),
        required=False,
        help_text="Up to 20 string keys (40 chars) with string values (500 chars); form: metadata[key]=value.",
    )

    def validate_metadata(self, metadata: dict) -> dict:
        if len(metadata) > METADATA_MAX_KEYS:
            raise serializers.ValidationError(f"metadata allows at most {METADATA_MAX_KEYS} keys.")
        for key in metadata:
            if not key or len(key) > METADATA_KEY_MAX_LENGTH:
                raise serializers.ValidationError(f"metadata keys must be 1 to {METADATA_KEY_MAX_LENGTH} characters.")
        return metadata


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
