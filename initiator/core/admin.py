from django.contrib import admin
from django.utils import timezone

from core.models import ApiKey, IdempotencyRecord


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "prefix", "scopes", "user", "created_at", "expires_at", "revoked_at", "last_used_at")
    # Scopes, owner and expiry are set when the key is made (`manage.py create_api_key`); here it can be renamed
    # or revoked.
    readonly_fields = ("prefix", "scopes", "user", "created_at", "expires_at", "last_used_at", "revoked_at")
    exclude = ("key_hash",)
    search_fields = ("name", "prefix")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        # Keys are created with `manage.py create_api_key`, which shows the key once.
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset) -> None:
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{revoked} API key(s) revoked.")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("key", "api_key", "response_status", "created_at")
    readonly_fields = [field.name for field in IdempotencyRecord._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
