import os
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.models import SCOPES
from core.secret_store import SecretStoreError, add_secret_version
from core.services import DEFAULT_SECRET_KEY_SCOPES, ApiKeyError, api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key (only its hash is stored). The key goes to Secret Manager (--secret-id), to a new "
        "file readable by its owner only (--output), or to a terminal; never to a log: with none of these and "
        "stdout not a terminal (a job, a pipe), nothing is created."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="Who the key is for.")
        parser.add_argument(
            "--scopes",
            help=(
                f"Comma-separated, any of {','.join(SCOPES)}. Default: {','.join(DEFAULT_SECRET_KEY_SCOPES)} "
                "(deposits:write and ops:reconcile only when asked for); with --user: "
                "payments:write,payments:read,users:read."
            ),
        )
        parser.add_argument("--user", type=int, help="Bind the key to this user id: it acts for that user only.")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            help=f"The key stops working after this many days (default {settings.API_KEY_DEFAULT_EXPIRY_DAYS}).",
        )
        destination = parser.add_mutually_exclusive_group()
        destination.add_argument(
            "--secret-id", help="Add the key as a new version of this Secret Manager secret (project PROJECT_ID)."
        )
        destination.add_argument("--output", help="Write the key to this new file (mode 0600; never overwritten).")

    def handle(self, *args, name, scopes, user, expires_in_days, secret_id, output, **options):
        if not secret_id and not output and not self.stdout.isatty():
            raise CommandError(
                "stdout is not a terminal (a job's output goes to its logs): give --secret-id or --output; "
                "nothing was created"
            )
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
            with transaction.atomic():
                # The key leaves the process before the row commits: a failure to store it creates nothing.
                api_key, raw_key = api_key_create(name=name, scopes=requested, user=owner, expires_at=expires_at)
                where = self._deliver(raw_key, secret_id=secret_id, output=output)
        except (ApiKeyError, SecretStoreError) as error:
            raise CommandError(f"{error}; nothing was created") from None
        bound = f", bound to user {owner.pk}" if owner else ""
        summary = (
            f"API key {api_key.id} ({api_key.prefix}…) created for {name!r} with {','.join(api_key.scopes)}"
            f"{bound}, expires {api_key.expires_at:%Y-%m-%d %H:%M} UTC"
        )
        if where:
            self.stdout.write(f"{summary}; the key is in {where}")
        else:
            self.stderr.write(f"{summary}; it is not shown again.")
            self.stdout.write(raw_key)

    def _deliver(self, raw_key: str, *, secret_id: str | None, output: str | None) -> str | None:
        if secret_id:
            return add_secret_version(project_id=settings.PROJECT_ID, secret_id=secret_id, data=raw_key.encode())
        if output:
            try:
                descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                raise CommandError(f"{output} exists: give a new file; nothing was created") from None
            except OSError as error:
                raise CommandError(f"{output}: {error.strerror}; nothing was created") from None
            with os.fdopen(descriptor, "w") as file:
                file.write(raw_key + "\n")
            return output
        return None
