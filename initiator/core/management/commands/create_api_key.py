from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import User
from core.models import SCOPES
from core.services import DEFAULT_SECRET_KEY_SCOPES, ApiKeyError, api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it once (only its hash is stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="Who the key is for.")
        parser.add_argument(
            "--scopes",
            help=(
                f"Comma-separated, any of {','.join(SCOPES)}. Default: {','.join(DEFAULT_SECRET_KEY_SCOPES)} "
                "(deposits:write only when asked for); with --user: payments:write,payments:read,users:read."
            ),
        )
        parser.add_argument("--user", type=int, help="Bind the key to this user id: it acts for that user only.")
        parser.add_argument("--expires-in-days", type=int, help="The key stops working after this many days.")

    def handle(self, *args, name: str, scopes: str | None, user: int | None, expires_in_days: int | None, **options):
        owner = None
        if user is not None:
            owner = User.objects.filter(pk=user).first()
            if owner is None:
                raise CommandError(f"no user {user}")
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1")
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        requested = [scope.strip() for scope in scopes.split(",") if scope.strip()] if scopes is not None else None
        try:
            api_key, raw_key = api_key_create(name=name, scopes=requested, user=owner, expires_at=expires_at)
        except ApiKeyError as error:
            raise CommandError(str(error)) from None
        bound = f", bound to user {owner.pk}" if owner else ""
        expiry = f", expires {api_key.expires_at:%Y-%m-%d %H:%M} UTC" if api_key.expires_at else ""
        self.stderr.write(
            f"API key {api_key.id} ({api_key.prefix}…) created for {name!r} with {','.join(api_key.scopes)}"
            f"{bound}{expiry}; it is not shown again."
        )
        self.stdout.write(raw_key)
