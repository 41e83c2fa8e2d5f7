from django.contrib import admin

from payments.models import DeadLetter, OutboxEvent, Payment, ProcessedEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "amount", "currency", "status", "failure_reason", "created_at")
    list_filter = ("status", "currency", "failure_reason")
    search_fields = ("id", "charge_id", "correlation_id", "user__email")
    date_hierarchy = "created_at"


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "payment", "created_at", "published_at", "publish_attempts")
    list_filter = ("event_type", ("published_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "payment__id")


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "event_type", "payment", "processed_at")
    list_filter = ("event_type",)
    search_fields = ("event_id", "payment__id")


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("message_id", "subscription", "payment_id", "delivery_attempt", "received_at")
    list_filter = ("subscription",)
    search_fields = ("message_id", "payment_id")
    fields = ("subscription", "message_id", "payment_id", "delivery_attempt", "received_at", "attributes", "data_text")
    readonly_fields = fields
