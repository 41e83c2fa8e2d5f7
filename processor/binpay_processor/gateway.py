"""BinPay's gateway protocol (docs/contracts.md, "Gateway protocol"), client side.

Results are sorted into what the saga can act on: a charge that succeeded, a decline, a permanent
rejection of the request, or an ambiguous answer (timeout, dropped connection, 5xx after the
session's retries, a concurrent request holding the idempotency key) that says nothing about
whether money moved.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import requests

from . import observability

logger = logging.getLogger(__name__)


class GatewayAmbiguous(Exception):
    """No usable answer: the charge or refund may or may not exist. Retry with the same key."""


class GatewayRejected(Exception):
    """The gateway refused the request for good (invalid body, key reused with other parameters, ...)."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"gateway answered {status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True)
class ChargeSucceeded:
    charge_id: str


@dataclass(frozen=True)
class ChargeDeclined:
    reason_code: str
    charge_id: str | None


@dataclass(frozen=True)
class ChargeCanceled:
    """The charge key was canceled at the gateway: no charge was or will be made with it."""


@dataclass(frozen=True)
class Cancellation:
    """The gateway's definitive answer to a cancel: canceled, or the charge the key already made."""

    canceled: bool
    charge: dict | None


class GatewayClient:
    def __init__(
        self, session: requests.Session, base_url: str, api_key: str, connect_timeout: float, read_timeout: float
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = (connect_timeout, read_timeout)

    def charge(
        self, *, payment_id: str, amount: int, currency: str
    ) -> ChargeSucceeded | ChargeDeclined | ChargeCanceled:
        body = {
            "amount": amount,
            "currency": currency,
            "reference": payment_id,
            "description": f"BinPay payment {payment_id}",
        }
        response = self._request("POST", "/v1/charges", json=body, idempotency_key=charge_key(payment_id))
        payload = _json(response)
        if response.status_code in (200, 201) and payload.get("status") == "succeeded":
            return ChargeSucceeded(charge_id=payload["id"])
        error = payload.get("error") or {}
        if response.status_code == 402:
            return ChargeDeclined(reason_code=error.get("code") or "card_declined", charge_id=error.get("charge"))
        if response.status_code == 409 and error.get("code") == "charge_canceled":
            return ChargeCanceled()
        raise self._unexpected(response, payload)

    def cancel(self, *, payment_id: str) -> Cancellation:
        """End the payment's charge attempts (docs/contracts.md, "Gateway protocol"): the only proof of no charge."""
        response = self._request("POST", "/v1/charges/cancel", json={"charge_idempotency_key": charge_key(payment_id)})
        payload = _json(response)
        if response.status_code == 200 and isinstance(payload.get("canceled"), bool):
            charge = payload.get("charge")
            if payload["canceled"] or isinstance(charge, dict):
                return Cancellation(canceled=payload["canceled"], charge=charge)
        raise self._unexpected(response, payload)

    def refund(self, *, payment_id: str, charge_id: str) -> str:
        """Refund the whole charge; returns the refund id (the existing one if already refunded)."""
        response = self._request(
            "POST", f"/v1/charges/{charge_id}/refunds", json={}, idempotency_key=f"refund-{payment_id}"
        )
        payload = _json(response)
        if response.status_code in (200, 201) and payload.get("id"):
            return payload["id"]
        raise self._unexpected(response, payload)

    def _request(self, method: str, path: str, *, idempotency_key: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, self.base_url + path, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as error:
            observability.gateway_unanswered(method, path, error, started)
            raise GatewayAmbiguous(f"{method} {path}: {type(error).__name__}: {error}") from error
        observability.gateway_answered(method, path, response, started)
        return response

    @staticmethod
    def _unexpected(response: requests.Response, payload: dict) -> Exception:
        error = payload.get("error") or {}
        code = error.get("code")
        status = response.status_code
        # 5xx (after the session's retries), 429 and a key still held by a concurrent request say
        # nothing final; 401/403 is our misconfiguration, fixed by an operator, so keep retrying.
        if status >= 500 or status in (401, 403, 429) or code == "idempotency_key_in_use":
            return GatewayAmbiguous(f"gateway answered {status} {code or ''}".strip())
        return GatewayRejected(status, code, error.get("message") or response.text[:200])


def charge_key(payment_id: str) -> str:
    return f"charge-{payment_id}"


def _json(response: requests.Response) -> dict:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}
