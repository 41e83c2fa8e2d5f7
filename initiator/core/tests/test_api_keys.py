"""API keys: scopes, user-bound keys, expiry, revocation, last_used_at, the commands, the admin."""

import io
import tempfile
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account
from core.models import SCOPES, ApiKey, hash_api_key
from core.services import DEFAULT_SECRET_KEY_SCOPES
from testing.fixtures import make_user


def create_key(*args: str) -> tuple[ApiKey, str]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "key"
        call_command("create_api_key", *args, "--output", str(path), stdout=io.StringIO(), stderr=io.StringIO())
        raw_key = path.read_text().strip()
    return ApiKey.objects.get(key_hash=hash_api_key(raw_key)), raw_key


def client_for(raw_key: str) -> Client:
    return Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {raw_key}")


class CreateApiKeyCommandTests(TestCase):
    def test_name_alone_makes_a_secret_key_that_cannot_mint_money(self) -> None:
        api_key, raw_key = create_key("--name", "platform")
        user = make_user(balance=0)

        self.assertEqual(api_key.scopes, list(DEFAULT_SECRET_KEY_SCOPES))
        self.assertIsNone(api_key.user)
        self.assertEqual(client_for(raw_key).get(f"/users/{user.pk}").status_code, 200)
        refused = client_for(raw_key).post(
            f"/users/{user.pk}/deposits", {"amount": "1.00"}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="d"
        )
        self.assertEqual((refused.status_code, refused.json()["error"]["code"]), (403, "insufficient_scope"))
        self.assertEqual(Account.objects.get(user=user).balance, 0)

    def test_scopes_user_and_expiry(self) -> None:
        user = make_user(balance=0)
        api_key, _ = create_key(
            "--name", "app", "--scopes", "payments:read,users:read", "--user", str(user.pk), "--expires-in-days", "30"
        )

        self.assertEqual((api_key.scopes, api_key.user_id), (["payments:read", "users:read"], user.pk))
        self.assertAlmostEqual(
            (api_key.expires_at - timezone.now()).total_seconds(), timedelta(days=30).total_seconds(), delta=60
        )

    def test_a_user_bound_key_gets_the_user_scopes_by_default(self) -> None:
        user = make_user(balance=0)
        api_key, _ = create_key("--name", "app", "--user", str(user.pk))
        self.assertEqual(api_key.scopes, ["payments:write", "payments:read", "users:read"])

    def test_refusals(self) -> None:
        user = make_user(balance=0)
        for args in (
            ("--scopes", "payments:delete"),
            ("--scopes", "deposits:write", "--user", str(user.pk)),
            ("--scopes", "users:write", "--user", str(user.pk)),
            ("--user", "999999"),
            ("--expires-in-days", "0"),
        ):
            with self.subTest(args=args), self.assertRaises(CommandError):
                create_key("--name", "bad", *args)
        self.assertEqual(ApiKey.objects.count(), 0)


class ListAndRevokeCommandTests(TestCase):
    def test_list_shows_state_scopes_and_owner_but_never_the_key(self) -> None:
        user = make_user(balance=0)
        active, active_raw = create_key("--name", "active-key", "--scopes", "payments:read")
        bound, _ = create_key("--name", "bound-key", "--user", str(user.pk))
        revoked, _ = create_key("--name", "revoked-key")
        call_command("revoke_api_key", str(revoked.pk), stdout=io.StringIO())
        expired, _ = create_key("--name", "expired-key")
        ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

        output = io.StringIO()
        call_command("list_api_keys", stdout=output)
        rows = {line.split("\t")[2]: line.split("\t") for line in output.getvalue().splitlines()[1:]}

        self.assertEqual(rows["active-key"][3:5], ["active", "payments:read"])
        self.assertEqual(rows["bound-key"][5], str(user.pk))
        self.assertEqual(rows["revoked-key"][3], "revoked")
        self.assertEqual(rows["expired-key"][3], "expired")
        self.assertNotIn(active_raw, output.getvalue())
        only_active = io.StringIO()
        call_command("list_api_keys", "--active", stdout=only_active)
        self.assertEqual(len(only_active.getvalue().splitlines()), 3)

    def test_revoked_and_expired_keys_answer_401_with_their_reason(self) -> None:
        revoked, revoked_raw = create_key("--name", "old")
        call_command("revoke_api_key", str(revoked.pk), stdout=io.StringIO())
        expired, expired_raw = create_key("--name", "temporary", "--expires-in-days", "1")
        ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

        for raw_key, code in ((revoked_raw, "api_key_revoked"), (expired_raw, "api_key_expired")):
            with self.subTest(code=code):
                response = client_for(raw_key).get("/users")
                self.assertEqual((response.status_code, response.json()["error"]["code"]), (401, code))
                self.assertEqual(response["WWW-Authenticate"], 'Bearer realm="binpay"')

    def test_revoking_an_unknown_key_fails(self) -> None:
        with self.assertRaises(CommandError):
            call_command("revoke_api_key", "424242", stdout=io.StringIO())


@override_settings(API_KEY_LAST_USED_INTERVAL_SECONDS=300)
class LastUsedTests(TestCase):
    def test_last_used_at_is_written_once_per_interval_not_per_request(self) -> None:
        api_key, raw_key = create_key("--name", "busy")
        client = client_for(raw_key)
        self.assertIsNone(api_key.last_used_at)

        client.get("/users")
        api_key.refresh_from_db()
        first_use = api_key.last_used_at
        self.assertIsNotNone(first_use)
        with self.assertNumQueries(2):  # the key lookup and the page of users: no UPDATE
            client.get("/users")
        api_key.refresh_from_db()
        self.assertEqual(api_key.last_used_at, first_use)

        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=first_use - timedelta(seconds=301))
        client.get("/users")
        api_key.refresh_from_db()
        self.assertGreaterEqual(api_key.last_used_at, first_use)

    def test_the_key_is_found_by_its_unique_hash_without_sorting(self) -> None:
        # Every API request pays for this lookup: one row at most, nothing to sort.
        _, raw_key = create_key("--name", "busy")
        with CaptureQueriesContext(connection) as queries:
            client_for(raw_key).get("/users")
        lookup = queries.captured_queries[0]["sql"]
        self.assertIn('FROM "core_apikey"', lookup)
        self.assertNotIn("ORDER BY", lookup)


class SeedDemoKeyTests(TestCase):
    def test_the_demo_key_has_every_scope_even_when_registered_before_scopes_existed(self) -> None:
        call_command("seed_demo", "--api-key", "bpk_demo_known_key", stdout=io.StringIO())
        ApiKey.objects.update(scopes=["payments:read"])
        call_command("seed_demo", "--api-key", "bpk_demo_known_key", stdout=io.StringIO())
        self.assertEqual(ApiKey.objects.get().scopes, list(SCOPES))


class AdminTests(TestCase):
    def setUp(self) -> None:
        admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "a-long-test-password")
        self.client.force_login(admin)
        self.user = make_user(balance=10_000)

    def test_accounts_cannot_be_edited_by_hand(self) -> None:
        account = Account.objects.get(user=self.user)
        response = self.client.post(
            f"/admin/accounts/account/{account.pk}/change/",
            {"currency": "EUR", "balance": 99_999_999, "held": 0, "user": self.user.pk},
            HTTP_HOST="localhost",
        )
        self.assertEqual(response.status_code, 403)
        account.refresh_from_db()
        self.assertEqual((account.currency, account.balance), ("USD", 10_000))
        page = self.client.get(f"/admin/accounts/account/{account.pk}/change/", HTTP_HOST="localhost")
        self.assertEqual(page.status_code, 200)
        self.assertNotIn('name="balance"', page.content.decode())
        self.assertNotIn('name="currency"', page.content.decode())

    def test_the_user_page_shows_the_account_read_only(self) -> None:
        page = self.client.get(f"/admin/accounts/user/{self.user.pk}/change/", HTTP_HOST="localhost").content.decode()
        for field in ("currency", "balance", "held"):
            self.assertNotIn(f'name="account-0-{field}"', page)
        self.client.post(
            f"/admin/accounts/user/{self.user.pk}/change/",
            {
                "email": self.user.email,
                "name": "Renamed",
                "account-TOTAL_FORMS": "1",
                "account-INITIAL_FORMS": "1",
                "account-MIN_NUM_FORMS": "0",
                "account-MAX_NUM_FORMS": "1",
                "account-0-id": Account.objects.get(user=self.user).pk,
                "account-0-user": self.user.pk,
                "account-0-balance": "99999999",
                "account-0-currency": "EUR",
            },
            HTTP_HOST="localhost",
        )
        account = Account.objects.get(user=self.user)
        self.assertEqual((account.currency, account.balance), ("USD", 10_000))

    def test_keys_can_be_revoked_in_the_admin(self) -> None:
        api_key, raw_key = create_key("--name", "leaked")
        self.client.post(
            "/admin/core/apikey/",
            {"action": "revoke", "_selected_action": [api_key.pk]},
            HTTP_HOST="localhost",
        )
        api_key.refresh_from_db()
        self.assertIsNotNone(api_key.revoked_at)
        self.assertEqual(client_for(raw_key).get("/users").status_code, 401)
