from django.contrib import admin, messages
from django.template.response import TemplateResponse

from core.errors import ApplicationError
from payments.models import (
    DeadLetter,
    OperatorAction,
    OutboxEvent,
    OutboxStep,
    Payment,
    ProcessedEvent,
    ProviderEvent,
    ReconcilerPass,
)
from payments.operator import SettleAction, settle_payment


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _settle_action(action: SettleAction, description: str):
    """An admin action that asks for the reason on a confirmation page, then settles each payment."""

    def settle(modeladmin, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if "confirm" not in request.POST or not reason:
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": description,
                "payments": queryset,
                "action_name": f"settle_{action.value}",
                "reason_missing": "confirm" in request.POST,
                "opts": modeladmin.model._meta,
            }
            return TemplateResponse(request, "admin/payments/settle_payment.html", context)
        actor = f"admin:{request.user.get_username()}"
        for payment in queryset:
            try:
                settle_payment(payment_id=payment.pk, action=action, reason=reason, actor=actor)
            except ApplicationError as error:
                modeladmin.message_user(request, f"{payment.pk}: refused: {error.message}", messages.ERROR)
            else:
                modeladmin.message_user(request, f"{payment.pk}: {action.value} done", messages.SUCCESS)
        return None

    settle.__name__ = f"settle_{action.value}"
    settle.short_description = description
    settle.allowed_permissions = ("settle",)
    return settle


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "amount", "currency", "status", "failure_reason", "created_at")
    search_fields = ("id", "charge_id", "correlation_id", "user__email")
    list_filter = ("status", "currency", "failure_reason", ("refund_failed_at", admin.EmptyFieldListFilter))
    date_hierarchy = "created_at"
    actions = [
        _settle_action(SettleAction.CAPTURE, "Settle (needs attention): capture the succeeded charge"),
        _settle_action(SettleAction.RELEASE, "Settle (needs attention): release the hold"),
        _settle_action(SettleAction.REFUND_AND_RELEASE, "Settle (needs attention): refund and release"),
    ]

    def has_settle_permission(self, request) -> bool:
        return request.user.has_perm("payments.change_payment")


@admin.register(OperatorAction)
class OperatorActionAdmin(ReadOnlyAdmin):
    list_display = ("payment", "action", "actor", "reason", "state", "created_at", "finished_at")
    list_filter = ("action", "state")
    search_fields = ("payment__id", "actor", "reason")


@admin.register(ReconcilerPass)
class ReconcilerPassAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "finished_at", "counts")


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "payment", "created_at", "published_at", "publish_attempts")
    list_filter = ("event_type", ("published_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "payment__id")


@admin.register(OutboxStep)
class OutboxStepAdmin(ReadOnlyAdmin):
    list_display = ("payment", "step", "created_at", "delivered_at", "delivery_attempts")
    list_filter = ("step", ("delivered_at", admin.EmptyFieldListFilter))
    search_fields = ("payment__id",)


@admin.register(ProviderEvent)
class ProviderEventAdmin(ReadOnlyAdmin):
    list_display = ("event_id", "event_type", "payment", "received_at")
    list_filter = ("event_type",)
    search_fields = ("event_id", "payment__id")


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
