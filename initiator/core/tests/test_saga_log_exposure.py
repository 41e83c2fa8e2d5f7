"""Issue 22 (L3): GET /payments/<id> shows API clients the saga log's steps and their outcome codes and
provider ids, never who settled a payment by hand, why, event ids or the provider's error text (the console
shows those to staff)."""

import uuid

from django.db import transaction
from django.test import Client, TestCase, override_settings

from binpay_common import steps
from core.services import api_key_create
from payments import clients, saga_log, settlement
from testing.fixtures import make_user, pending_payment, unique_name

OPERATOR = {"source": "operator", "actor": "alice", "reason": "note to self: fraud suspect"}


class SagaLogExposureTests(TestCase):
    def test_operator_and_diagnostic_details_stay_out_of_the_api(self) -> None:
        # The saga-log client is cached with its collection: none built here may outlive the override.
        clients.reset_clients()
        self.addCleanup(clients.reset_clients)
        with override_settings(FIRESTORE_COLLECTION=unique_name("transactions")):
            user = make_user()
            payment = pending_payment(user)
            settlement.hold_for_attention(
                payment_id=payment.pk,
                reason="gateway_unreachable",
                detail={"source": "reconciler", "error": "ConnectionError: gateway.internal:8090 refused"},
            )
            # The steps an operator's refund-and-release and the sweeper write (payments/claims.py).
            with transaction.atomic():
                saga_log.record_step(
                    payment,
                    steps.REFUNDED,
                    {
                        "intent_id": "pi_exposure",
                        "refund_id": "re_exposure",
                        "refund_status": "pending",
                        "reason_code": "operator_refund",
                        "event_id": str(uuid.uuid4()),
                        **OPERATOR,
                    },
                )
                saga_log.record_step(
                    payment,
                    steps.REFUND_FAILED,
                    {
                        "intent_id": "pi_exposure",
                        "refund_id": "re_exposure",
                        "failure_reason": "expired_or_canceled_card",
                        **OPERATOR,
                    },
                )
            self.assertEqual(saga_log.deliver(payment), 2)
            _, key = api_key_create(name="app", user=user)
            body = (
                Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {key}").get(f"/payments/{payment.pk}").json()
            )

        log_steps = body["saga_log"]["steps"]
        self.assertEqual([step["step"] for step in log_steps], ["NEEDS_ATTENTION", "REFUNDED", "REFUND_FAILED"])
        self.assertEqual(log_steps[0]["detail"], {"reason_code": "gateway_unreachable", "source": "reconciler"})
        self.assertEqual(
            log_steps[1]["detail"],
            {
                "intent_id": "pi_exposure",
                "refund_id": "re_exposure",
                "refund_status": "pending",
                "reason_code": "operator_refund",
                "source": "operator",
            },
        )
        self.assertEqual(
            log_steps[2]["detail"],
            {
                "intent_id": "pi_exposure",
                "refund_id": "re_exposure",
                "failure_reason": "expired_or_canceled_card",
                "source": "operator",
            },
        )
        for hidden in ("alice", "fraud suspect", "gateway.internal", "ConnectionError", "event_id"):
            self.assertNotIn(hidden, str(body))
