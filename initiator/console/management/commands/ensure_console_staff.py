import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from console.management.commands.ensure_operator_group import OPERATOR_GROUP


class Command(BaseCommand):
    help = (
        "Create or update a staff login for the operator console, in the operator group. The password comes from --password-file "
        "(a random one is written there first when the file is missing or empty). Idempotent."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="operator")
        parser.add_argument("--password-file", required=True, type=Path)

    @transaction.atomic
    def handle(self, *args, username: str, password_file: Path, **options) -> None:
        if not password_file.exists() or not password_file.read_text().strip():
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(secrets.token_urlsafe(12) + "\n")
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = True
        user.is_active = True
        user.set_password(password)
        user.save()
        call_command("ensure_operator_group", stdout=self.stdout)
        user.groups.add(Group.objects.get(name=OPERATOR_GROUP))
        self.stdout.write(f"console staff login {username} {'created' if created else 'updated'}")
