"""Issue 22 (L3): GET /payments/<id> shows API clients the saga log's steps and their outcome codes, never
who settled a payment by hand, why, or the gateway's error text (the console shows those to staff)."""

from django.test import Client, TestCase, override_settings

from core.services import api_key_create
from payments import saga_log, settlement
from testing.fixtures import make_user, pending_payment, unique_name


class SagaLogExposureTests(TestCase):
    def test_operator_and_diagnostic_details_stay_out_of_the_api(self) -> None:
        with override_settings(FIRESTORE_COLLECTION=unique_name("transactions")):
            user = make_user()
            payment = pending_payment(user)
            settlement.hold_for_attention(
                payment_id=payment.pk,
                reason="gateway_unreachable",
                detail={"source": "reconciler", "error": "ConnectionError: gateway.internal:8090 refused"},
            )
            saga_log.ensure_step(
                payment=payment,
                step=saga_log.STEP_CHARGE_CANCELED,
                detail={"source": "operator", "actor": "alice", "reason": "note to self: fraud suspect"},
            )
            _, key = api_key_create(name="app", user=user)
            body = (
                Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {key}").get(f"/payments/{payment.pk}").json()
            )

        steps = body["saga_log"]["steps"]
        self.assertEqual([step["step"] for step in steps], ["NEEDS_ATTENTION", "CHARGE_CANCELED"])
        self.assertEqual(steps[0]["detail"], {"reason_code": "gateway_unreachable", "source": "reconciler"})
        self.assertEqual(steps[1]["detail"], {"source": "operator"})
        for hidden in ("alice", "fraud suspect", "gateway.internal", "ConnectionError"):
            self.assertNotIn(hidden, str(body))
