"""Issue 22 (M1): where no scheduler token is configured (RECONCILE_AUDIENCE unset: GKE, compose, `make run`),
POST /internal/reconcile takes an operator-scoped key (ops:reconcile) only: never a user-bound key, never a
payment key. Against a live gunicorn."""

import requests

from core.services import ApiKeyError, api_key_create
from payments.models import ReconcilerPass
from testing.fixtures import make_user
from testing.live import LiveGunicornTestCase


class ReconcileAccessTests(LiveGunicornTestCase):
    def reconcile(self, raw_key: str) -> requests.Response:
        return requests.post(
            f"{self.base}/internal/reconcile", headers={"Authorization": f"Bearer {raw_key}"}, timeout=60
        )

    def test_user_bound_and_payment_keys_are_refused_an_operator_key_runs_a_pass(self) -> None:
        user = make_user()
        _, user_key = api_key_create(name="end user's app", user=user)
        _, payments_key = api_key_create(name="platform backend", scopes=["payments:write", "payments:read"])

        for refused in (user_key, payments_key):
            response = self.reconcile(refused)
            self.assertEqual(response.status_code, 403, response.text)
            self.assertEqual(response.json()["error"]["code"], "insufficient_scope")
        self.assertEqual(ReconcilerPass.objects.count(), 0)

        _, operator_key = api_key_create(name="reconcile cron", scopes=["ops:reconcile"])
        response = self.reconcile(operator_key)
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(ReconcilerPass.objects.count(), 1)

    def test_a_user_bound_key_can_never_hold_the_operator_scope(self) -> None:
        with self.assertRaisesMessage(ApiKeyError, "a user-bound key cannot hold ops:reconcile"):
            api_key_create(name="sneaky", user=make_user(), scopes=["ops:reconcile"])
