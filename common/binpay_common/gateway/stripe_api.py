"""The gateway port's adapter for Stripe's PaymentIntents API, through the official SDK.

The same adapter talks to Stripe (`PAYMENT_GATEWAY_URL=https://api.stripe.com`) and to the sandbox
gateway, which models that API. What it relies on, from Stripe's documentation:

- idempotency (https://docs.stripe.com/idempotency): the first answer under a key is saved once
  execution began — 500s included — and replayed (`Idempotent-Replayed: true`); other parameters
  under the key are refused (400 `idempotency_error`); keys may be pruned after 24 h. So every POST
  here carries BinPay's deterministic key and byte-identical parameters for the same attempt, the
  SDK's own retries are off (it would retry with the same key, replaying a saved 500) and so is its
  generated key (every call passes one);
- a confirm that fails answers 402 with the intent in the error body, back in
  `requires_payment_method` (https://docs.stripe.com/api/payment_intents/confirm,
  https://docs.stripe.com/declines/codes);
- cancel is allowed until the intent succeeds and then every operation on it fails; otherwise 400
  `payment_intent_unexpected_state` (https://docs.stripe.com/api/payment_intents/cancel);
- refunds may be `pending` and later `failed` (https://docs.stripe.com/refunds);
- search is eventually consistent (https://docs.stripe.com/search).

Transport: one pooled requests session; a connection that could not be opened is retried (nothing
was sent), nothing else is — an ambiguous answer goes back to the saga, which retrieves by id.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

import requests
import stripe
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import (
    GatewayAmbiguous,
    GatewayRejected,
    Intent,
    IntentInWrongState,
    IntentStatus,
    PaymentRef,
    Refund,
    RefundStatus,
    WebhookEvent,
    WebhookInvalid,
    key,
)

# The value Stripe accepts for a cancel we ask for: the reason BinPay canceled is in its saga log.
CANCELLATION_REASON = "abandoned"
CONNECT_RETRIES = 2
# Called after every provider call: (operation, outcome, seconds). Outcome: "ok", "declined", "rejected",
# "ambiguous". The services count and time provider calls with it.
CallObserver = Callable[[str, str, float], None]

# The SDK reports the previous request's timing to Stripe in a header; BinPay keeps its requests minimal.
stripe.enable_telemetry = False
# The SDK logs two INFO lines per request; BinPay logs what the saga decides, and times calls itself.
logging.getLogger("stripe").setLevel(logging.WARNING)


def build_session(pool_size: int, api_base: str) -> requests.Session:
    """A pooled session that retries only connections that could not be opened (no request was sent).

    Every request goes to `api_base`, so its proxy (HTTPS_PROXY, NO_PROXY, ...) is looked up once
    here: left to trust the environment, requests scans every environment variable and looks for
    a .netrc on each request, a tenth of the processor's CPU in a provider call.
    """
    retry = Retry(total=CONNECT_RETRIES, connect=CONNECT_RETRIES, read=0, status=0, other=0, redirect=0)
    adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_size)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.proxies = requests.utils.get_environ_proxies(api_base)
    session.trust_env = False
    return session


class StripeGateway:
    """`binpay_common.gateway.PaymentGateway` on Stripe's API (or the sandbox's model of it)."""

    def __init__(
        self,
        *,
        api_base: str,
        api_key: str,
        connect_timeout: float,
        read_timeout: float,
        webhook_secret: str | None = None,
        pool_size: int = 32,
        observe: CallObserver | None = None,
    ) -> None:
        self._session = build_session(pool_size, api_base)
        http_client = stripe.RequestsClient(timeout=(connect_timeout, read_timeout), session=self._session)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=0,
            http_client=http_client,
        )
        self._webhook_secret = webhook_secret
        self._observe = observe

    def close(self) -> None:
        self._session.close()

    # -- the port ----------------------------------------------------------------------------------

    def create_intent(self, payment: PaymentRef, *, attempt: int = 1) -> Intent:
        params: dict = {
            "amount": payment.amount,
            "currency": payment.currency.lower(),
            "payment_method": payment.payment_method,
            "payment_method_types": ["card"],
            "capture_method": "automatic",
            "description": f"BinPay payment {payment.payment_id}",
            "metadata": {"payment_id": payment.payment_id},
        }
        if payment.customer:
            params["customer"] = payment.customer
        options = {"idempotency_key": key("create", payment.payment_id, attempt)}
        return self._call("create", lambda: _intent(self._client.v1.payment_intents.create(params, options)))

    def confirm_intent(self, intent_id: str, payment: PaymentRef, *, attempt: int = 1) -> Intent:
        # The customer is not present: a card that needs authentication is declined
        # (authentication_required) instead of waiting for a 3-D Secure step nobody can take.
        params = {"off_session": True}
        options = {"idempotency_key": key("confirm", intent_id, attempt)}

        def confirm() -> Intent:
            try:
                return _intent(self._client.v1.payment_intents.confirm(intent_id, params, options))
            except stripe.CardError as declined:
                # 402: the intent is in the error body, back in requires_payment_method.
                carried = getattr(declined.error, "payment_intent", None)
                intent = _intent(carried) if carried else self.retrieve_intent(intent_id)
                raise _Declined(intent) from declined

        try:
            return self._call("confirm", confirm, intent_id)
        except _Declined as declined:
            return declined.intent

    def cancel_intent(self, intent_id: str, *, attempt: int = 1) -> Intent:
        params = {"cancellation_reason": CANCELLATION_REASON}
        options = {"idempotency_key": key("cancel", intent_id, attempt)}
        return self._call(
            "cancel", lambda: _intent(self._client.v1.payment_intents.cancel(intent_id, params, options)), intent_id
        )

    def retrieve_intent(self, intent_id: str) -> Intent:
        return self._call("retrieve", lambda: _intent(self._client.v1.payment_intents.retrieve(intent_id)))

    def refund_intent(self, intent_id: str, *, payment_id: str, attempt: int = 1) -> Refund:
        params = {"payment_intent": intent_id, "metadata": {"payment_id": payment_id}}
        options = {"idempotency_key": key("refund", intent_id, attempt)}
        return self._call("refund", lambda: _refund(self._client.v1.refunds.create(params, options)), intent_id)

    def retrieve_refund(self, refund_id: str) -> Refund:
        return self._call("retrieve_refund", lambda: _refund(self._client.v1.refunds.retrieve(refund_id)))

    def refunds_of(self, intent_id: str) -> list[Refund]:
        def listed() -> list[Refund]:
            page = self._client.v1.refunds.list({"payment_intent": intent_id, "limit": 100})
            return sorted((_refund(item) for item in page.auto_paging_iter()), key=lambda refund: refund.id)

        return self._call("list_refunds", listed)

    def search_intents(self, payment_id: str) -> list[Intent]:
        query = f"metadata['payment_id']:'{payment_id}'"

        def searched() -> list[Intent]:
            page = self._client.v1.payment_intents.search({"query": query, "limit": 100})
            return [_intent(item) for item in page.auto_paging_iter()]

        return self._call("search", searched)

    def list_intents(self, *, created_gte: int | None = None) -> Iterator[Intent]:
        params: dict = {"limit": 100}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        page = self._call("list", lambda: self._client.v1.payment_intents.list(params))
        for item in page.auto_paging_iter():
            yield _intent(item)

    def parse_webhook(self, payload: bytes, signature: str | None) -> WebhookEvent:
        if not self._webhook_secret:
            raise WebhookInvalid("no webhook signing secret is configured (PAYMENT_GATEWAY_WEBHOOK_SECRET)")
        try:
            # The SDK's check (HMAC and its 5-minute tolerance). The verified body is then read as the
            # JSON it is: building the SDK's objects from it was a quarter of the webhook view's CPU.
            stripe.WebhookSignature.verify_header(
                payload, signature, self._webhook_secret, stripe.Webhook.DEFAULT_TOLERANCE
            )
            event = json.loads(payload)
        except stripe.SignatureVerificationError as error:
            raise WebhookInvalid(f"signature does not verify: {error}") from error
        except ValueError as error:
            raise WebhookInvalid(f"not a JSON event: {error}") from error
        if (
            not isinstance(event, dict)
            or not isinstance(event.get("id"), str)
            or not isinstance(event.get("type"), str)
        ):
            raise WebhookInvalid("not an event: an object with an id and a type is expected")
        obj = _object(_object(event.get("data")).get("object"))
        metadata = _object(obj.get("metadata"))
        kind = obj.get("object")
        intent_id = obj.get("id") if kind == "payment_intent" else obj.get("payment_intent")
        charge_id = {"payment_intent": obj.get("latest_charge"), "charge": obj.get("id")}.get(kind, obj.get("charge"))
        return WebhookEvent(
            id=event["id"],
            type=event["type"],
            payment_id=metadata.get("payment_id"),
            intent_id=intent_id,
            charge_id=charge_id if isinstance(charge_id, str) else None,
        )

    # -- errors ------------------------------------------------------------------------------------

    def _call(self, operation: str, call: Callable, intent_id: str | None = None):
        started = time.perf_counter()
        outcome = "ok"
        try:
            return call()
        except _Declined:
            outcome = "declined"
            raise
        except stripe.InvalidRequestError as error:
            outcome = "rejected"
            if error.code == "payment_intent_unexpected_state" and intent_id is not None:
                intent = self.retrieve_intent(intent_id)
                raise IntentInWrongState(
                    f"{operation} refused: the intent is {intent.status}", intent=intent
                ) from error
            raise GatewayRejected(
                f"{operation} refused: {error.user_message or error}",
                status=error.http_status,
                code=error.code,
                param=error.param,
            ) from error
        except stripe.IdempotencyError as error:
            # Other parameters under a used key: BinPay sent two different requests under one key (a bug).
            outcome = "rejected"
            raise GatewayRejected(
                f"{operation}: {error}", status=error.http_status, code="idempotency_error"
            ) from error
        except stripe.CardError as error:
            outcome = "declined"
            raise GatewayRejected(f"{operation} declined: {error}", status=402, code=error.code) from error
        except stripe.StripeError as error:
            # Connection errors, timeouts, 5xx, 409 (a concurrent request under the key), 429, 401/403.
            outcome = "ambiguous"
            replayed = (error.headers or {}).get("Idempotent-Replayed") == "true"
            status = error.http_status or "no answer"
            raise GatewayAmbiguous(f"{operation}: {status}: {error}", replayed=replayed) from error
        finally:
            if self._observe is not None:
                self._observe(operation, outcome, time.perf_counter() - started)


class _Declined(Exception):
    def __init__(self, intent: Intent) -> None:
        super().__init__(intent.id)
        self.intent = intent


def _object(value) -> dict:
    """A JSON object of an event, or an empty one where the event has none (or something else)."""
    return value if isinstance(value, dict) else {}


def _plain(obj) -> dict:
    """The SDK's objects are not dicts (stripe-python 16): read them as the JSON they came from."""
    return obj if isinstance(obj, dict) else obj.to_dict()


def _intent(obj) -> Intent:
    obj = _plain(obj)
    error = obj.get("last_payment_error") or {}
    charge = obj.get("latest_charge")
    return Intent(
        id=obj["id"],
        status=IntentStatus(obj["status"]),
        amount=obj["amount"],
        currency=str(obj["currency"]).upper(),
        payment_id=(obj.get("metadata") or {}).get("payment_id"),
        charge_id=charge if isinstance(charge, str) or charge is None else charge.get("id"),
        decline_code=(error.get("decline_code") or error.get("code")) if error else None,
        cancellation_reason=obj.get("cancellation_reason"),
        created=obj.get("created") or 0,
    )


def _refund(obj) -> Refund:
    obj = _plain(obj)
    return Refund(
        id=obj["id"],
        intent_id=obj.get("payment_intent"),
        charge_id=obj.get("charge"),
        amount=obj["amount"],
        status=RefundStatus(obj["status"]),
        failure_reason=obj.get("failure_reason"),
        created=obj.get("created") or 0,
    )
