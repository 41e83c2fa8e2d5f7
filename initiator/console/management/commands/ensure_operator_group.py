from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

OPERATOR_GROUP = "operator"
# Least privilege for the console: read payments and dead letters, settle needs_attention payments
# (change_payment, the permission the admin's settle action asks for too). Nothing else.
OPERATOR_PERMISSIONS = ("payments.view_payment", "payments.change_payment", "payments.view_deadletter")


class Command(BaseCommand):
    help = (
        f"Create or reset the {OPERATOR_GROUP!r} group to exactly {', '.join(OPERATOR_PERMISSIONS)}. Idempotent. "
        "Add staff to it in the admin or with ensure_console_staff."
    )

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        group, created = Group.objects.get_or_create(name=OPERATOR_GROUP)
        permissions = [
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in (name.split(".") for name in OPERATOR_PERMISSIONS)
        ]
        group.permissions.set(permissions)
        self.stdout.write(
            f"group {OPERATOR_GROUP} {'created' if created else 'reset'}: {', '.join(OPERATOR_PERMISSIONS)}"
        )
