from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "API access and idempotency"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from core import schema  # noqa: F401  (registers the OpenAPI extension)
        from core.auth import recent_keys
        from core.models import ApiKey

        # A key changed in this process is looked up afresh on its next request.
        post_save.connect(recent_keys.clear, sender=ApiKey, dispatch_uid="api-key-saved")
        post_delete.connect(recent_keys.clear, sender=ApiKey, dispatch_uid="api-key-deleted")
