"""Settle a payment that needs attention by hand (payments.operator), e.g.

python manage.py settle_payment 3f6c... --release --reason "gateway confirmed no charge (ticket 123)"
"""

import getpass
import json

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from payments.operator import SettleAction, settle_payment


class Command(BaseCommand):
    help = "Settle a needs_attention payment: capture, release, or refund and release; asks the provider first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("payment_id")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--capture", dest="action", action="store_const", const=SettleAction.CAPTURE)
        action.add_argument("--release", dest="action", action="store_const", const=SettleAction.RELEASE)
        action.add_argument(
            "--refund-and-release", dest="action", action="store_const", const=SettleAction.REFUND_AND_RELEASE
        )
        parser.add_argument("--reason", required=True, help="Why; recorded with the action and in the saga log.")
        parser.add_argument("--actor", default=None, help="Who (default: the login running the command).")

    def handle(self, *args, payment_id: str, action: SettleAction, reason: str, actor: str | None, **options) -> None:
        try:
            payment = settle_payment(
                payment_id=payment_id, action=action, reason=reason, actor=actor or f"cli:{getpass.getuser()}"
            )
        except ApplicationError as error:
            raise CommandError(f"{error.code}: {error.message}") from None
        self.stdout.write(json.dumps({"id": str(payment.pk), "status": payment.status, "action": action.value}))
