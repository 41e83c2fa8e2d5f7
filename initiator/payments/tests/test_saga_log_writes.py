"""`saga_log.ensure_step` against the real Firestore emulator, with other writers on the same document."""

import threading

from django.conf import settings
from django.test import TestCase

from payments import clients, saga_log
from testing.fixtures import make_user, pending_payment

# Steps the initiator may write, each from its own thread, all on one payment's document at once.
STEPS = (saga_log.STEP_CHARGED, saga_log.STEP_REFUNDED, saga_log.STEP_NEEDS_ATTENTION, saga_log.STEP_CAPTURED)


class EnsureStepTests(TestCase):
    def setUp(self) -> None:
        self.user = make_user(balance=1_000_000)

    def steps_of(self, payment) -> tuple[dict, list[dict]]:
        document = clients.firestore_client().collection(settings.FIRESTORE_COLLECTION).document(str(payment.pk))
        steps = [snapshot.to_dict() for snapshot in document.collection("steps").order_by("seq").stream()]
        return document.get().to_dict(), steps

    def test_concurrent_writers_append_each_step_once_in_one_sequence(self) -> None:
        payments = [pending_payment(self.user) for _ in range(6)]
        written: list[bool] = []
        start = threading.Barrier(len(STEPS))

        def write(payment, step) -> None:
            start.wait()
            written.append(saga_log.ensure_step(payment=payment, step=step, detail={"source": "test"}))
            written.append(saga_log.ensure_step(payment=payment, step=step, detail={"source": "test"}))

        with self.assertLogs("payments.saga_log", "DEBUG") as logs:
            for payment in payments:
                threads = [threading.Thread(target=write, args=(payment, step)) for step in STEPS]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()

        self.assertEqual((written.count(True), written.count(False)), (len(payments) * len(STEPS),) * 2)
        for payment in payments:
            parent, steps = self.steps_of(payment)
            self.assertEqual([step["seq"] for step in steps], list(range(1, len(STEPS) + 1)))
            self.assertEqual(sorted(step["step"] for step in steps), sorted(STEPS))
            self.assertEqual(parent["steps_done"], [step["step"] for step in steps])
            self.assertEqual((parent["version"], parent["state"]), (len(STEPS), steps[-1]["step"]))
            self.assertEqual(parent["payment_id"], str(payment.pk))
        # The writers did collide: a write found the document changed since its read and was redone.
        self.assertTrue(any("changed since it was read" in line for line in logs.output), logs.output[:5])

    def test_a_step_on_a_payment_the_processor_never_logged_creates_the_document(self) -> None:
        payment = pending_payment(self.user)
        self.assertTrue(saga_log.ensure_step(payment=payment, step=saga_log.STEP_COMPENSATED, detail={}))
        self.assertFalse(saga_log.ensure_step(payment=payment, step=saga_log.STEP_COMPENSATED, detail={}))

        parent, steps = self.steps_of(payment)
        self.assertEqual([(step["seq"], step["step"]) for step in steps], [(1, saga_log.STEP_COMPENSATED)])
        self.assertEqual(
            (parent["amount"], parent["currency"], parent["user_id"]), (payment.amount, "USD", self.user.pk)
        )
