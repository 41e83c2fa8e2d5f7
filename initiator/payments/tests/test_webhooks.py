"""POST /webhooks/stripe against the real sandbox's events, signed as Stripe signs them
(https://docs.stripe.com/webhooks#verify-manually: `t=<unix time>,v1=<HMAC-SHA256 of "t.payload">`): an
event is a reason to look again, never proof (docs/protocol.md §6), written only when it can tell
something the saga does not know."""

import hashlib
import hmac
import json
import time

import requests
from django.conf import settings
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from binpay_common.gateway.stripe_api import StripeGateway
from payments import clients
from payments.models import Payment, ProviderEvent
from payments.tests.test_sweeper import SweeperMixin
from testing.fixtures import GATEWAY_API_KEY, pending_payment

SECRET = "whsec_initiator_suite"


def signed(payload: bytes, secret: str = SECRET, at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class WebhookTests(SweeperMixin, TestCase):
    def setUp(self) -> None:
        super().setUp()
        clients.set_clients(
            gateway=StripeGateway(
                api_base=self.gateway.url,
                api_key=GATEWAY_API_KEY,
                connect_timeout=settings.PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS,
                read_timeout=settings.PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS,
                webhook_secret=SECRET,
            )
        )

    def event(self, intent_id: str, event_type: str = "payment_intent.succeeded") -> bytes:
        """The sandbox's own event for the intent, as its webhook would carry it."""
        listed = requests.get(
            f"{self.gateway.url}/v1/events",
            params={"type": event_type, "limit": 100},
            headers={"Authorization": f"Bearer {GATEWAY_API_KEY}"},
            timeout=10,
        ).json()["data"]
        [event] = [event for event in listed if event["data"]["object"]["id"] == intent_id]
        return json.dumps(event).encode()

    def post(self, payload: bytes, signature: str | None):
        headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature else {}
        return self.client.post("/webhooks/stripe", payload, content_type="application/json", **headers)

    def test_an_unsigned_or_forged_event_is_a_400_and_writes_nothing(self) -> None:
        payment, own = self.completed()
        payload = self.event(own.id)
        for signature in (None, signed(payload, secret="whsec_someone_else"), signed(payload, at=1)):
            with self.subTest(signature=signature):
                response = self.post(payload, signature)
                self.assertEqual(response.status_code, 400, response.content)
                self.assertEqual(response.json()["error"]["code"], "webhook_invalid")
        self.assertEqual(ProviderEvent.objects.count(), 0)

    def test_a_signed_body_that_is_no_event_is_a_400_and_writes_nothing(self) -> None:
        # Whoever holds the signing secret can still send what Stripe never would: answer it, never crash.
        for payload in (b"[]", b'"evt_1"', b'{"id": 7, "type": "payment_intent.succeeded"}', b"{not json"):
            with self.subTest(payload=payload):
                response = self.post(payload, signed(payload))
                self.assertEqual(response.status_code, 400, response.content)
                self.assertEqual(response.json()["error"]["code"], "webhook_invalid")
        self.assertEqual(ProviderEvent.objects.count(), 0)

    def test_what_the_saga_already_knows_is_answered_and_not_written(self) -> None:
        pending = pending_payment(self.user, amount=5_000)
        in_flight = self.gateway.intent(pending)  # the processor's confirm, its outcome not applied yet
        completed, own = self.completed()
        for payment, intent in ((pending, in_flight), (completed, own)):
            with self.subTest(status=payment.status):
                payload = self.event(intent.id)
                # Every payment's path brings such a webhook: one lookup of the payment, nothing sorted.
                with CaptureQueriesContext(connection) as queries:
                    response = self.post(payload, signed(payload))
                self.assertEqual((response.status_code, response.json()), (200, {"status": "expected"}))
                [lookup] = [query["sql"] for query in queries.captured_queries]
                self.assertNotIn("ORDER BY", lookup)
        self.assertEqual(ProviderEvent.objects.count(), 0)
        completed.refresh_from_db()
        self.assertIsNone(completed.sweep_due_at)

    def test_a_second_success_on_a_completed_payment_makes_it_due_once(self) -> None:
        payment, _ = self.completed()
        second = self.made_outside(payment)
        payload = self.event(second.id)

        first = self.post(payload, signed(payload))
        again = self.post(payload, signed(payload))

        self.assertEqual((first.status_code, first.json()), (200, {"status": "recorded"}))
        self.assertEqual((again.status_code, again.json()), (200, {"status": "duplicate"}))
        self.assertEqual(ProviderEvent.objects.filter(payment=payment).count(), 1)
        payment.refresh_from_db()
        self.assertIsNotNone(payment.sweep_due_at)

    def test_a_late_success_on_a_rolled_back_payment_makes_it_due(self) -> None:
        payment, _ = self.rolled_back()
        Payment.objects.filter(pk=payment.pk).update(sweep_due_at=None)
        late = self.made_outside(payment)
        payload = self.event(late.id)

        response = self.post(payload, signed(payload))

        self.assertEqual((response.status_code, response.json()), (200, {"status": "recorded"}))
        payment.refresh_from_db()
        self.assertIsNotNone(payment.sweep_due_at)
