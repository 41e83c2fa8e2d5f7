"""Stripe's v1 endpoints for the subset BinPay uses (see gateway/README.md for the rules and pages)."""

from __future__ import annotations

from flask import Blueprint, Response, g, request

from . import errors, events, payments, reads
from .forms import Params
from .service import Call, Outcome, Plan
from .store import insert, load, public
from .web import engine, idempotency_key, params, require_api_key, respond

api = Blueprint("api", __name__, url_prefix="/v1")
api.before_request(require_api_key)


def _call(values: Params, plan: Plan | None = None) -> Call:
    return Call(
        api_key=g.api_key,
        method=request.method,
        path=request.path,
        params=values.values,
        idempotency_key=idempotency_key(),
        request_id=g.request_id,
        plan=plan or Plan(),
    )


def _money_read(reader) -> Response:
    """A GET on payment objects: the outage knobs apply to reads too."""
    return respond(engine().read(reader, plan=engine().plan(writes=False)))


def _plain_read(reader) -> Response:
    return respond(engine().read(reader))


# --- PaymentIntents -------------------------------------------------------------------------------


@api.post("/payment_intents")
def create_payment_intent() -> Response:
    values = params()
    amount = values.integer("amount", required=True, minimum=1)
    currency = payments.valid_currency(values.string("currency", required=True))
    payments.valid_amount(amount, currency)
    fields = {
        "amount": amount,
        "currency": currency,
        "customer": values.string("customer"),
        "payment_method": values.string("payment_method"),
        "capture_method": values.choice("capture_method", payments.CAPTURE_METHODS) or "automatic_async",
        "metadata": values.metadata() or {},
        "description": values.string("description", max_length=1000),
    }
    confirm = values.boolean("confirm")
    off_session = values.boolean("off_session")
    _card_only(values)
    values.string("return_url")
    values.finish()
    if off_session is not None and not confirm:
        raise errors.invalid_param("off_session can only be used when confirm=true.", "off_session")
    confirming = {"off_session": bool(off_session)} if confirm else None
    payment_id = fields["metadata"].get("payment_id")
    plan = engine().plan(
        writes=True,
        create_amount=amount,
        confirm_amount=amount if confirm else None,
        mark=f"create:{payment_id}" if payment_id else None,
    )
    return respond(engine().execute(_call(values, plan), lambda ctx: payments.create_intent(ctx, fields, confirming)))


def _card_only(values: Params) -> None:
    types = values.string_list("payment_method_types")
    if types is not None and types != ["card"]:
        raise errors.invalid_param("The sandbox supports only payment_method_types=['card'].", "payment_method_types")


@api.post("/payment_intents/<intent_id>/confirm")
def confirm_payment_intent(intent_id: str) -> Response:
    values = params()
    payment_method = values.string("payment_method")
    off_session = bool(values.boolean("off_session"))
    values.string("return_url")
    values.finish()
    amount = _intent_amount(intent_id)
    plan = engine().plan(writes=True, confirm_amount=amount, mark=f"confirm:{intent_id}")
    operation = lambda ctx: payments.confirm_intent(ctx, intent_id, payment_method, off_session)  # noqa: E731
    return respond(engine().execute(_call(values, plan), operation))


@api.post("/payment_intents/<intent_id>/capture")
def capture_payment_intent(intent_id: str) -> Response:
    values = params()
    amount = values.integer("amount_to_capture", minimum=1)
    values.finish()
    plan = engine().plan(writes=True)
    return respond(engine().execute(_call(values, plan), lambda ctx: payments.capture_intent(ctx, intent_id, amount)))


@api.post("/payment_intents/<intent_id>/cancel")
def cancel_payment_intent(intent_id: str) -> Response:
    values = params()
    reason = values.choice("cancellation_reason", payments.CANCELLATION_REASONS)
    values.finish()
    plan = engine().plan(writes=True)
    return respond(engine().execute(_call(values, plan), lambda ctx: payments.cancel_intent(ctx, intent_id, reason)))


def _intent_amount(intent_id: str) -> int:
    """The magic amount decides a confirm's faults before it runs (a plain read; 404 if missing)."""
    intent = load(engine().store.connection(), intent_id, "payment_intent")
    if intent is None:
        raise errors.no_such("payment_intent", intent_id)
    return intent["amount"]


@api.get("/payment_intents/<intent_id>")
def retrieve_payment_intent(intent_id: str) -> Response:
    params().finish()
    return _money_read(lambda conn, now: reads.get_object(conn, "payment_intent", intent_id))


@api.get("/payment_intents")
def list_payment_intents() -> Response:
    values = params()
    return _money_read(
        lambda conn, now: reads.list_objects(
            conn, values, url=request.path, object_type="payment_intent", filters=("customer",)
        )
    )


@api.get("/payment_intents/search")
def search_payment_intents() -> Response:
    values = params()
    lag = engine().knobs.current().search_lag_seconds
    return _money_read(lambda conn, now: reads.search_intents(conn, values, now=now, lag_seconds=lag))


# --- charges and refunds --------------------------------------------------------------------------


@api.get("/charges/<charge_id>")
def retrieve_charge(charge_id: str) -> Response:
    params().finish()
    return _money_read(lambda conn, now: reads.get_object(conn, "charge", charge_id))


@api.get("/charges")
def list_charges() -> Response:
    values = params()
    return _money_read(
        lambda conn, now: reads.list_objects(
            conn, values, url=request.path, object_type="charge", filters=("payment_intent", "customer")
        )
    )


@api.post("/refunds")
def create_refund() -> Response:
    values = params()
    fields = {
        "payment_intent": values.string("payment_intent"),
        "charge": values.string("charge"),
        "amount": values.integer("amount", minimum=1),
        "metadata": values.metadata(),
        "reason": values.choice("reason", payments.REFUND_REASONS),
    }
    values.finish()
    if fields["payment_intent"] is None and fields["charge"] is None:
        raise errors.invalid_param("One of the following params should be provided for this request: payment_intent or charge.", None)  # fmt: skip
    plan = engine().plan(writes=True)
    return respond(engine().execute(_call(values, plan), lambda ctx: payments.create_refund(ctx, fields)))


@api.get("/refunds/<refund_id>")
def retrieve_refund(refund_id: str) -> Response:
    params().finish()
    return _money_read(lambda conn, now: reads.get_object(conn, "refund", refund_id))


@api.get("/refunds")
def list_refunds() -> Response:
    values = params()
    return _money_read(
        lambda conn, now: reads.list_objects(
            conn, values, url=request.path, object_type="refund", filters=("payment_intent", "charge")
        )
    )


# --- customers and payment methods ----------------------------------------------------------------


def _customer_fields(values: Params) -> dict:
    settings = values.mapping("invoice_settings") or {}
    unknown = sorted(set(settings) - {"default_payment_method"})
    if unknown:
        raise errors.unknown_param(f"invoice_settings[{unknown[0]}]")
    return {
        "email": values.string("email", max_length=512),
        "name": values.string("name", max_length=256),
        "description": values.string("description", max_length=350),
        "metadata": values.metadata(),
        "default_payment_method": settings.get("default_payment_method") or None,
    }


@api.post("/customers")
def create_customer() -> Response:
    values = params()
    fields = {**_customer_fields(values), "payment_method": values.string("payment_method")}
    values.finish()
    return respond(engine().execute(_call(values), lambda ctx: payments.create_customer(ctx, fields)))


@api.post("/customers/<customer_id>")
def update_customer(customer_id: str) -> Response:
    values = params()
    fields = _customer_fields(values)
    values.finish()
    return respond(engine().execute(_call(values), lambda ctx: payments.update_customer(ctx, customer_id, fields)))


@api.get("/customers/<customer_id>")
def retrieve_customer(customer_id: str) -> Response:
    params().finish()
    return _plain_read(lambda conn, now: reads.get_object(conn, "customer", customer_id))


@api.post("/payment_methods/<pm_id>/attach")
def attach_payment_method(pm_id: str) -> Response:
    values = params()
    customer = values.string("customer", required=True)
    values.finish()
    return respond(engine().execute(_call(values), lambda ctx: payments.attach(ctx, pm_id, customer)))


@api.get("/payment_methods/<pm_id>")
def retrieve_payment_method(pm_id: str) -> Response:
    params().finish()
    return _plain_read(lambda conn, now: reads.get_object(conn, "payment_method", pm_id, "PaymentMethod"))


# --- events and webhook endpoints -----------------------------------------------------------------


@api.get("/events")
def list_events() -> Response:
    values = params()
    return _plain_read(lambda conn, now: reads.list_events(conn, values))


@api.get("/events/<event_id>")
def retrieve_event(event_id: str) -> Response:
    params().finish()
    return _plain_read(lambda conn, now: reads.get_event(conn, event_id))


@api.post("/webhook_endpoints")
def create_webhook_endpoint() -> Response:
    values = params()
    url = values.string("url", required=True)
    enabled = values.string_list("enabled_events")
    fields = {"description": values.string("description"), "metadata": values.metadata()}
    values.string("api_version")
    values.finish()
    if not url.startswith(("http://", "https://")):
        raise errors.invalid_param("Invalid URL: an endpoint URL must be http(s).", "url", "url_invalid")
    if not enabled:
        raise errors.missing_param("enabled_events")
    for event_type in enabled:
        if event_type != "*" and event_type not in events.EVENT_TYPES:
            raise errors.invalid_param(f"Invalid event type: {event_type}", "enabled_events")

    def operation(ctx) -> tuple[int, dict]:
        secret = events.new_secret()
        endpoint = events.endpoint_object(
            endpoint_id=events.new_id("we"), url=url, enabled_events=enabled, secret=secret, now=ctx.now, **fields
        )
        insert(ctx.conn, endpoint)
        return 200, {**public(endpoint), "secret": secret}  # the secret is shown only on creation

    return respond(engine().execute(_call(values), operation))


@api.get("/webhook_endpoints/<endpoint_id>")
def retrieve_webhook_endpoint(endpoint_id: str) -> Response:
    params().finish()
    return _plain_read(lambda conn, now: reads.get_object(conn, "webhook_endpoint", endpoint_id))


@api.get("/webhook_endpoints")
def list_webhook_endpoints() -> Response:
    values = params()
    return _plain_read(
        lambda conn, now: reads.list_objects(conn, values, url=request.path, object_type="webhook_endpoint", filters=())
    )


@api.delete("/webhook_endpoints/<endpoint_id>")
def delete_webhook_endpoint(endpoint_id: str) -> Response:
    params().finish()
    with engine().store.transaction() as conn:
        deleted = conn.execute(
            "DELETE FROM objects WHERE id = ? AND type = 'webhook_endpoint'", (endpoint_id,)
        ).rowcount
        conn.execute("DELETE FROM deliveries WHERE endpoint_id = ? AND status = 'pending'", (endpoint_id,))
    if not deleted:
        raise errors.no_such("webhook_endpoint", endpoint_id)
    return respond(Outcome(200, {"id": endpoint_id, "object": "webhook_endpoint", "deleted": True}))
