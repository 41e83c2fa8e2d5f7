"""Event bodies and attributes of docs/contracts.md (schemas in contracts/events/)."""

import uuid
from datetime import datetime

from rest_framework import serializers

from binpay_common import tracing

SCHEMA_VERSION = 1
PAYMENT_INITIATED = "payment.initiated"
PAYMENT_COMPLETED = "payment.completed"
PAYMENT_ROLLBACK = "payment.rollback"
ROLLBACK_REASONS = ("card_declined", "insufficient_funds", "processor_failure", "gateway_unavailable", "expired")


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event_attributes(*, event_type: str, event_id: uuid.UUID, payment_id: uuid.UUID, correlation_id: str) -> dict:
    return {
        "event_type": event_type,
        "event_id": str(event_id),
        "payment_id": str(payment_id),
        "schema_version": str(SCHEMA_VERSION),
        "correlation_id": correlation_id,
        **tracing.trace_attributes(),
    }


class _StrictInteger(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class _StrictBoolean(serializers.BooleanField):
    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class _StrictString(serializers.CharField):
    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class _StrictSerializer(serializers.Serializer):
    """Refuses keys the schema does not list (additionalProperties: false)."""

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(self.fields)
        if unknown:
            raise serializers.ValidationError(f"unexpected keys: {sorted(unknown)}")
        return attrs


class _OutcomeSerializer(_StrictSerializer):
    event_id = serializers.UUIDField()
    event_type = _StrictString()
    schema_version = _StrictInteger()
    payment_id = serializers.UUIDField()

    def validate_schema_version(self, value):
        if value != SCHEMA_VERSION:
            raise serializers.ValidationError(f"schema_version must be {SCHEMA_VERSION}")
        return value


class PaymentCompletedSerializer(_OutcomeSerializer):
    charge_id = _StrictString(min_length=1)
    amount = _StrictInteger(min_value=1)
    currency = serializers.RegexField(r"^[A-Z]{3}$")
    completed_at = serializers.DateTimeField()

    def validate_event_type(self, value):
        if value != PAYMENT_COMPLETED:
            raise serializers.ValidationError(f"event_type must be {PAYMENT_COMPLETED}")
        return value


class PaymentRollbackSerializer(_OutcomeSerializer):
    reason_code = serializers.ChoiceField(choices=ROLLBACK_REASONS)
    failed_step = serializers.ChoiceField(choices=("charge", "post_charge"))
    refunded = _StrictBoolean()
    charge_id = _StrictString(allow_null=True, allow_blank=True)
    occurred_at = serializers.DateTimeField()

    def validate_event_type(self, value):
        if value != PAYMENT_ROLLBACK:
            raise serializers.ValidationError(f"event_type must be {PAYMENT_ROLLBACK}")
        return value


OUTCOME_SERIALIZERS = {PAYMENT_COMPLETED: PaymentCompletedSerializer, PAYMENT_ROLLBACK: PaymentRollbackSerializer}
