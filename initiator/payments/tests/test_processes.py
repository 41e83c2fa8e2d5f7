"""The real processes: gunicorn serving the API and the Pub/Sub push endpoint, runserver, and the
streaming-pull consumer, all against the emulators and the test database."""

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import requests
from django.test import TransactionTestCase, override_settings

from accounts.models import Account
from payments.models import Payment, PaymentStatus, ProcessedEvent
from testing.fixtures import (
    INITIATOR_DIR,
    api_client,
    child_env,
    completion_event,
    contract_schema,
    create_subscription,
    create_topic,
    free_port,
    make_user,
    pending_payment,
    publish,
    pull_messages,
    rollback_event,
    saga_steps,
    unique_name,
    wait_until,
)


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def log_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return lines


def wait_for_http(url: str, process: subprocess.Popen, log_path: Path) -> None:
    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{url}: the server exited: {log_path.read_text()[-3000:]}")
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    if not wait_until(up, deadline_seconds=30):
        raise AssertionError(f"{url} did not answer: {log_path.read_text()[-3000:]}")


class ProcessTestCase(TransactionTestCase):
    """Child processes share the test database, a fresh initiation topic and Firestore collection."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.collection = unique_name("transactions")
        cls.initiation_topic = create_topic()
        cls.override = override_settings(FIRESTORE_COLLECTION=cls.collection, PUBSUB_TOPIC=cls.initiation_topic)
        cls.override.enable()
        cls.logs = tempfile.TemporaryDirectory(prefix="binpay-initiator-logs-")
        cls.processes: list[subprocess.Popen] = []

    @classmethod
    def tearDownClass(cls) -> None:
        for process in cls.processes:
            stop(process)
        cls.override.disable()
        cls.logs.cleanup()
        super().tearDownClass()

    @classmethod
    def start(cls, command: list[str], log_name: str, **env: str) -> tuple[subprocess.Popen, Path]:
        log_path = Path(cls.logs.name) / log_name
        environment = child_env(FIRESTORE_COLLECTION=cls.collection, PUBSUB_TOPIC=cls.initiation_topic, **env)
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command,
                cwd=INITIATOR_DIR,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        cls.processes.append(process)
        return process, log_path


class GunicornTestCase(ProcessTestCase):
    """One gunicorn (2 workers) for the class, started exactly as the Dockerfile does, plus a bind."""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        port = free_port()
        cls.base = f"http://127.0.0.1:{port}"
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        cls.server, cls.server_log = cls.start(
            [gunicorn, "binpay_initiator.wsgi:application", "-b", f"127.0.0.1:{port}"], "gunicorn.log"
        )
        try:
            wait_for_http(f"{cls.base}/healthz", cls.server, cls.server_log)
        except AssertionError:
            cls.tearDownClass()
            raise


class GunicornTests(GunicornTestCase):
    def test_seed_curl_through_gunicorn_publishes_the_initiation(self) -> None:
        subscription = create_subscription(self.initiation_topic)
        _, raw_key = api_client()
        user = make_user()

        # curl -X POST -d "user_id=1&amount=100.00" http://<initiator>/initiate-payment (+ the API key)
        response = requests.post(
            f"{self.base}/initiate-payment",
            data=f"user_id={user.pk}&amount=100.00",
            headers={
                "Authorization": f"Bearer {raw_key}",
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Correlation-ID": "gunicorn-1",
            },
            timeout=10,
        )

        self.assertEqual(response.status_code, 202, response.text)
        payment_id = response.json()["id"]
        self.assertEqual(response.headers["Location"], f"/payments/{payment_id}")
        messages = pull_messages(subscription, expected=1)
        self.assertEqual(len(messages), 1)
        body = json.loads(messages[0].data)
        jsonschema.validate(body, contract_schema("payment.initiated"), format_checker=jsonschema.FormatChecker())
        self.assertEqual((body["payment_id"], body["amount"]), (payment_id, 10_000))
        self.assertEqual(messages[0].attributes["correlation_id"], "gunicorn-1")

        detail = requests.get(
            f"{self.base}/payments/{payment_id}", headers={"Authorization": f"Bearer {raw_key}"}, timeout=10
        )
        self.assertEqual(detail.json()["status"], "pending")
        self.assertIsNone(detail.json()["saga_log"])
        unauthenticated = requests.post(
            f"{self.base}/initiate-payment", data={"user_id": user.pk, "amount": "1.00"}, timeout=10
        )
        self.assertEqual(unauthenticated.status_code, 401)
        self.assertEqual(Payment.objects.count(), 1)
        log = log_lines(self.server_log)
        self.assertTrue(any(line.get("payment_id") == payment_id and line["severity"] == "INFO" for line in log))
        self.assertNotIn(raw_key, self.server_log.read_text())

    def test_health_ready_and_openapi_over_http(self) -> None:
        self.assertEqual(requests.get(f"{self.base}/healthz", timeout=5).json(), {"status": "ok"})
        ready = requests.get(f"{self.base}/readyz", timeout=5)
        self.assertEqual((ready.status_code, ready.json()["checks"]), (200, {"database": "ok"}))
        self.assertEqual(requests.get(f"{self.base}/openapi.json", timeout=5).json()["openapi"][:2], "3.")

    def test_emulator_push_delivered_twice_is_handled_once(self) -> None:
        completion_topic = create_topic()
        rollback_topic = create_topic()
        create_subscription(completion_topic, push_endpoint=f"{self.base}/pubsub/push")
        create_subscription(rollback_topic, push_endpoint=f"{self.base}/pubsub/push")
        user = make_user(balance=100_000)
        completed = pending_payment(user, amount=10_000)
        rolled_back = pending_payment(user, amount=20_000)

        for _ in range(2):
            publish(completion_topic, *completion_event(completed, charge_id="ch_push"))
            publish(rollback_topic, *rollback_event(rolled_back, reason_code="insufficient_funds"))

        def results() -> list[str]:
            lines = log_lines(self.server_log)
            return sorted(
                line["message"].rsplit(": ", 1)[1] for line in lines if line["message"].startswith("push delivery")
            )

        self.assertTrue(wait_until(lambda: len(results()) >= 4), self.server_log.read_text()[-3000:])
        self.assertEqual(results(), ["applied", "applied", "duplicate", "duplicate"])
        self.assertEqual(ProcessedEvent.objects.count(), 2)
        completed.refresh_from_db()
        rolled_back.refresh_from_db()
        self.assertEqual((completed.status, completed.charge_id), (PaymentStatus.COMPLETED, "ch_push"))
        self.assertEqual((rolled_back.status, rolled_back.failure_reason), ("rolled_back", "insufficient_funds"))
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held), (90_000, 0))
        self.assertEqual([s["step"] for s in saga_steps(completed.pk)], ["CAPTURED"])
        self.assertEqual([s["step"] for s in saga_steps(rolled_back.pk)], ["COMPENSATED"])


class RunserverTests(ProcessTestCase):
    def test_runserver_serves_the_api(self) -> None:
        port = free_port()
        server, log = self.start(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], "runserver.log"
        )
        wait_for_http(f"http://127.0.0.1:{port}/healthz", server, log)
        _, raw_key = api_client()
        user = make_user()

        response = requests.post(
            f"http://127.0.0.1:{port}/initiate-payment",
            data=f"user_id={user.pk}&amount=100.00",
            headers={"Authorization": f"Bearer {raw_key}", "Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        )

        self.assertEqual(response.status_code, 202, response.text)


class PullConsumerTests(ProcessTestCase):
    def test_completion_and_rollback_delivered_twice_are_handled_once_then_sigterm_drains(self) -> None:
        completion_topic, rollback_topic = create_topic(), create_topic()
        completion_subscription = create_subscription(completion_topic)
        rollback_subscription = create_subscription(rollback_topic)
        user = make_user(balance=100_000)
        completed = pending_payment(user, amount=10_000)
        rolled_back = pending_payment(user, amount=20_000)
        consumer, consumer_log = self.start(
            [sys.executable, "manage.py", "consume_outcomes"],
            "consumer.log",
            PUBSUB_COMPLETION_SUBSCRIPTION=completion_subscription,
            PUBSUB_ROLLBACK_SUBSCRIPTION=rollback_subscription,
            PUBSUB_DEAD_LETTER_SUBSCRIPTION=create_subscription(create_topic()),
            PUBSUB_FLOW_CONTROL_MAX_MESSAGES="2",
        )

        for _ in range(2):
            publish(completion_topic, *completion_event(completed, charge_id="ch_pull"))
            publish(rollback_topic, *rollback_event(rolled_back, reason_code="card_declined"))

        def acked() -> list[str]:
            return [line["message"] for line in log_lines(consumer_log) if " acked (" in line["message"]]

        self.assertTrue(wait_until(lambda: len(acked()) >= 4), consumer_log.read_text()[-3000:])
        self.assertEqual(sorted(message.split("(")[1] for message in acked()), ["applied)"] * 2 + ["duplicate)"] * 2)
        self.assertEqual(stop(consumer), 0, consumer_log.read_text()[-3000:])
        self.assertIn("consumer stopped", consumer_log.read_text())

        completed.refresh_from_db()
        rolled_back.refresh_from_db()
        self.assertEqual((completed.status, completed.charge_id), ("completed", "ch_pull"))
        self.assertEqual((rolled_back.status, rolled_back.failure_reason), ("rolled_back", "card_declined"))
        account = Account.objects.get(user=user)
        self.assertEqual((account.balance, account.held, account.available), (90_000, 0, 90_000))
        self.assertEqual(ProcessedEvent.objects.count(), 2)
        self.assertEqual([s["step"] for s in saga_steps(completed.pk)], ["CAPTURED"])
        self.assertEqual([s["step"] for s in saga_steps(rolled_back.pk)], ["COMPENSATED"])
        # Everything was acknowledged: nothing is redelivered.
        self.assertEqual(pull_messages(completion_subscription, expected=1, deadline_seconds=1), [])

    def test_relay_loop_runs_until_sigterm(self) -> None:
        subscription = create_subscription(self.initiation_topic)
        payment = pending_payment(make_user())  # on_commit published it already; unmark to simulate a crash
        pull_messages(subscription, expected=1)
        payment.outbox_events.update(published_at=None)

        relay, relay_log = self.start([sys.executable, "manage.py", "relay_outbox", "--batch-size", "10"], "relay.log")

        messages = pull_messages(subscription, expected=1)
        self.assertEqual([m.attributes["payment_id"] for m in messages], [str(payment.pk)])
        self.assertTrue(wait_until(lambda: not payment.outbox_events.filter(published_at__isnull=True).exists()))
        self.assertEqual(stop(relay), 0, relay_log.read_text()[-3000:])


class RelayFaultInjectionTests(ProcessTestCase):
    def test_relay_dies_between_publish_and_mark_then_republishes_with_the_same_event_id(self) -> None:
        subscription = create_subscription(self.initiation_topic)
        with override_settings(OUTBOX_PUBLISH_ON_COMMIT=False):
            payment = pending_payment(make_user())
        # Nothing was published on commit: the relay does all the publishing.
        self.assertEqual(pull_messages(subscription, expected=1, deadline_seconds=2), [])
        event = payment.outbox_events.get()

        crashing, crashing_log = self.start(
            [sys.executable, "manage.py", "relay_outbox", "--once"],
            "relay-crash.log",
            FAULT_INJECTION_ENABLED="true",
            OUTBOX_RELAY_CRASH_RATE="1.0",
        )
        self.assertEqual(crashing.wait(timeout=60), 70, crashing_log.read_text()[-3000:])
        first = pull_messages(subscription, expected=1)
        event.refresh_from_db()
        self.assertIsNone(event.published_at)

        # The rate alone does nothing without FAULT_INJECTION_ENABLED.
        relay, relay_log = self.start(
            [sys.executable, "manage.py", "relay_outbox", "--once"], "relay.log", OUTBOX_RELAY_CRASH_RATE="1.0"
        )
        self.assertEqual(relay.wait(timeout=60), 0, relay_log.read_text()[-3000:])
        second = pull_messages(subscription, expected=1)

        self.assertEqual([m.attributes["event_id"] for m in first + second], [str(event.pk)] * 2)
        self.assertNotEqual(first[0].message_id, second[0].message_id)
        event.refresh_from_db()
        self.assertIsNotNone(event.published_at)
        self.assertEqual(event.publish_attempts, 1)
