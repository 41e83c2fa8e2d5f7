from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from accounts.services import deposit_create, user_create
from core.models import SCOPES, ApiKey
from core.services import api_key_create, api_key_ensure

DEMO_EMAIL = "demo@binpay.test"
DEMO_BALANCE = 1_000_000  # USD 10,000.00 in cents
# Stripe's test card that always succeeds (https://docs.stripe.com/testing); the sandbox knows it too.
DEMO_PAYMENT_METHOD = "pm_card_visa"
DEMO_KEY_NAME = "demo"
# What the demo, the README's commands and the e2e stack do with the demo key: pay and watch
# payments, create users and read them, and fund them (deposits).
DEMO_KEY_SCOPES = SCOPES


class Command(BaseCommand):
    help = (
        "Create the demo user (id 1 on a fresh database) with USD 10,000.00 and an API key with every scope. "
        "Idempotent."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--api-key", help="Register this key (e.g. a known dev key) instead of generating one.")

    @transaction.atomic
    def handle(self, *args, api_key: str | None = None, **options) -> None:
        if settings.IS_PRODUCTION:
            # Demo money and an every-scope key printed to a job's log have no place in production.
            raise CommandError(
                "seed_demo refuses BINPAY_ENV=production: create users through the API with a key from "
                "`create_api_key --secret-id ...` (docs/security.md)"
            )
        user = User.objects.filter(email=DEMO_EMAIL).order_by("id").first()
        if user is None:
            user = user_create(
                email=DEMO_EMAIL, name="Demo User", currency="USD", default_payment_method=DEMO_PAYMENT_METHOD
            )
            deposit_create(user_id=user.pk, amount=DEMO_BALANCE, currency="USD")
            self.stdout.write(f"demo user {user.pk} created with USD 10,000.00")
        else:
            self.stdout.write(f"demo user {user.pk} already exists")
        if api_key:
            _, created = api_key_ensure(name=DEMO_KEY_NAME, raw_key=api_key, scopes=DEMO_KEY_SCOPES)
            self.stdout.write("demo API key registered" if created else "demo API key already registered")
        elif ApiKey.objects.filter(name=DEMO_KEY_NAME, revoked_at__isnull=True).exists():
            self.stdout.write("a demo API key already exists (create another with create_api_key)")
        else:
            _, raw_key = api_key_create(name=DEMO_KEY_NAME, scopes=DEMO_KEY_SCOPES)
            self.stdout.write(f"demo API key (shown once): {raw_key}")
