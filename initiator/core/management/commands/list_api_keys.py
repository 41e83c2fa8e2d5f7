from django.core.management.base import BaseCommand
from django.utils import timezone

from core.models import ApiKey


def _state(api_key: ApiKey, now) -> str:
    if api_key.revoked_at is not None:
        return "revoked"
    if api_key.is_expired(now):
        return "expired"
    return "active"


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


class Command(BaseCommand):
    help = "List the API keys (never the keys themselves): id, prefix, name, state, scopes, user, dates."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--active", action="store_true", help="Only keys that still work.")

    def handle(self, *args, active: bool, **options) -> None:
        now = timezone.now()
        self.stdout.write("id\tprefix\tname\tstate\tscopes\tuser\tcreated\texpires\tlast_used (to within minutes)")
        for api_key in ApiKey.objects.order_by("id"):
            state = _state(api_key, now)
            if active and state != "active":
                continue
            self.stdout.write(
                "\t".join(
                    [
                        str(api_key.id),
                        api_key.prefix,
                        api_key.name,
                        state,
                        ",".join(api_key.scopes),
                        str(api_key.user_id or "-"),
                        _when(api_key.created_at),
                        _when(api_key.expires_at),
                        _when(api_key.last_used_at),
                    ]
                )
            )
