"""Bad input, fuzzed over real HTTP against gunicorn (issue 6, invariant 6).

schemathesis generates valid and invalid requests for every operation of the served
/openapi.json; hypothesis generates malformed Pub/Sub push envelopes. No answer is a 5xx, every
4xx carries {"error": {"type", "code", "message", "param"}}, and a refused request writes nothing.
Bounded and derandomized, so a run is repeatable and short.
"""

import base64
import json
import uuid

import requests
import schemathesis
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from accounts.models import Account, Deposit, User
from core.fixtures import api_client, completion_event, contract_schema, make_user, pending_payment
from core.models import ApiKey, IdempotencyRecord
from payments.models import DeadLetter, OutboxEvent, Payment, ProcessedEvent
from payments.tests.test_processes import GunicornTestCase

ERROR_KEYS = {"type", "code", "message", "param"}
# The push endpoint is fuzzed with its own envelopes below.
SKIPPED_PATHS = {"/pubsub/push"}
FUZZ_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def database_state() -> dict:
    """What a refused request must leave as it was."""
    return {
        "users": User.objects.count(),
        "accounts": Account.objects.count(),
        "balances": Account.objects.aggregate(balance=Sum("balance"), held=Sum("held")),
        "deposits": Deposit.objects.count(),
        "payments": sorted(Payment.objects.values_list("id", "status")),
        "outbox": OutboxEvent.objects.count(),
        "inbox": ProcessedEvent.objects.count(),
        "dead_letters": DeadLetter.objects.count(),
        "idempotency": IdempotencyRecord.objects.count(),
        "api_keys": ApiKey.objects.count(),
    }


class FuzzTests(GunicornTestCase):
    def setUp(self) -> None:
        _, raw_key = api_client()
        self.headers = {"Authorization": f"Bearer {raw_key}"}
        self.session = requests.Session()
        self.user = make_user(balance=1_000_000)
        self.payment = pending_payment(self.user, amount=10_000)

    def tearDown(self) -> None:
        self.session.close()

    def assert_well_refused(self, response: requests.Response, before: dict, what: str) -> None:
        self.assertLess(response.status_code, 500, f"{what}: {response.status_code} {response.text[:500]}")
        if 400 <= response.status_code < 500:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                self.fail(f"{what}: {response.status_code} without the structured error body: {response.text[:500]}")
            self.assertEqual(set(error), ERROR_KEYS, what)
            self.assertTrue(error["type"] and error["code"] and error["message"], what)
            self.assertEqual(database_state(), before, f"{what}: a refused request wrote something")

    def test_schemathesis_against_the_served_openapi_document(self) -> None:
        schema = schemathesis.openapi.from_url(f"{self.base}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        fuzzed = [op for op in operations if op.path not in SKIPPED_PATHS]
        self.assertGreaterEqual(len(fuzzed), 10)
        calls = {"2xx": 0, "4xx": 0}

        for operation in fuzzed:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                label = f"{mode.value} {operation.method.upper()} {operation.path}"
                with self.subTest(label):
                    self.fuzz_operation(operation, mode, label, calls)
        # Both kinds of answer were exercised, so the checks above had something to check.
        self.assertGreater(calls["2xx"], 10)
        self.assertGreater(calls["4xx"], 10)

    def fuzz_operation(self, operation, mode: GenerationMode, label: str, calls: dict) -> None:
        @FUZZ_SETTINGS
        @given(case=operation.as_strategy(mode))
        def check(case) -> None:
            before = database_state()
            response = case.call(base_url=self.base, session=self.session, headers=self.headers, timeout=30)
            calls["4xx" if 400 <= response.status_code < 500 else "2xx"] += 1
            self.assert_well_refused(
                response, before, f"{label}: {case.method} {case.formatted_path} {case.body!r:.300}"
            )

        try:
            check()
        except Unsatisfiable:
            # An operation without parameters or body has no invalid request to generate.
            if mode != GenerationMode.NEGATIVE or operation.body or list(operation.iter_parameters()):
                raise

    def test_malformed_push_envelopes_are_acknowledged_or_refused_and_write_nothing(self) -> None:
        body, attributes = completion_event(self.payment)
        required = contract_schema("payment.completed")["required"]
        json_values = st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=10,
        )
        # A real completion with one required field missing: it names the pending payment, so a
        # handler that settled it anyway would show up in the database state.
        broken_events = st.sampled_from(required).map(
            lambda missing: json.dumps({k: v for k, v in body.items() if k != missing}).encode()
        )
        data = st.one_of(
            st.binary(max_size=64).map(lambda raw: base64.b64encode(raw).decode()),
            broken_events.map(lambda raw: base64.b64encode(raw).decode()),
            st.text(max_size=40),
            json_values,
        )
        attribute_maps = st.one_of(
            st.just(attributes),
            st.dictionaries(st.sampled_from([*attributes, "other"]), st.text(max_size=40) | json_values, max_size=6),
            json_values,
        )
        messages = st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "data": data,
                    "attributes": attribute_maps,
                    "messageId": st.text(max_size=20) | json_values,
                    "publishTime": st.text(max_size=20),
                },
            ),
            json_values,
        )
        subscriptions = st.one_of(
            st.just("projects/binpay-local/subscriptions/completion-sub"),
            st.text(max_size=30).filter(lambda name: not name.endswith("dead-letter-sub")),
            st.integers(),
            st.none(),
        )
        envelopes = st.one_of(
            st.fixed_dictionaries(
                {"message": messages},
                optional={"subscription": subscriptions, "deliveryAttempt": st.integers() | st.text(max_size=5)},
            ),
            json_values,
        )
        raw_bodies = st.binary(max_size=200)

        @settings(FUZZ_SETTINGS, max_examples=150)
        @given(request_body=st.one_of(envelopes.map(lambda e: json.dumps(e).encode()), raw_bodies))
        def check(request_body: bytes) -> None:
            before = database_state()
            response = self.session.post(
                f"{self.base}/pubsub/push",
                data=request_body,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            self.assertIn(response.status_code // 100, (2, 4), f"{response.status_code} {response.text[:300]}")
            self.assert_well_refused(response, before, f"push {request_body[:200]!r}")
            # Acknowledged (2xx) malformed messages change nothing either.
            self.assertEqual(database_state(), before, f"push {request_body[:200]!r} wrote something")

        check()
        self.payment.refresh_from_db()
        self.assertEqual(self.payment.status, "pending")
        self.assertEqual(str(uuid.UUID(attributes["payment_id"])), str(self.payment.pk))
