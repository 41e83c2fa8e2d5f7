"""HTTP client of the payment gateway (protocol in docs/contracts.md) for the reconciler and operators."""

from dataclasses import dataclass

import requests
from django.conf import settings


class GatewayUnavailable(Exception):
    """The gateway could not answer now (connection, timeout, 5xx or an unexpected answer)."""


@dataclass(frozen=True)
class Cancellation:
    """The gateway's definitive answer to a cancel: canceled (no charge ever), or the charge the key made."""

    canceled: bool
    charge: dict | None


def charge_key(payment_id) -> str:
    """The processor's Idempotency-Key for the payment's charge."""
    return f"charge-{payment_id}"


class GatewayClient:
    def __init__(self, *, base_url: str, api_key: str, connect_timeout: float, read_timeout: float) -> None:
        self.base_url = base_url
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls) -> "GatewayClient":
        return cls(
            base_url=settings.PAYMENT_GATEWAY_URL,
            api_key=settings.PAYMENT_GATEWAY_API_KEY,
            connect_timeout=settings.PAYMENT_GATEWAY_CONNECT_TIMEOUT_SECONDS,
            read_timeout=settings.PAYMENT_GATEWAY_READ_TIMEOUT_SECONDS,
        )

    def charges_for_reference(self, reference: str) -> list[dict]:
        """Every charge made with this reference, oldest first. Never proof that no charge exists."""
        charges = self._call("GET", "/v1/charges", params={"reference": reference}).get("data")
        if not isinstance(charges, list):
            raise GatewayUnavailable(f"unexpected charge list: {charges!r:.200}")
        return charges

    def cancel_charge(self, payment_id) -> Cancellation:
        """End the payment's charge attempts: the charge its key made, or a guarantee that none will be made."""
        body = self._call("POST", "/v1/charges/cancel", json={"charge_idempotency_key": charge_key(payment_id)})
        charge = body.get("charge")
        if not isinstance(body.get("canceled"), bool) or (not body["canceled"] and not isinstance(charge, dict)):
            raise GatewayUnavailable(f"unexpected cancellation: {body!r:.200}")
        return Cancellation(canceled=body["canceled"], charge=charge)

    def refund(self, charge_id: str) -> dict:
        """Refund the whole charge (the existing refund if it was refunded already)."""
        refund = self._call(
            "POST", f"/v1/charges/{charge_id}/refunds", json={}, headers={"Idempotency-Key": f"refund-{charge_id}"}
        )
        if not refund.get("id"):
            raise GatewayUnavailable(f"unexpected refund: {refund!r:.200}")
        return refund

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise GatewayUnavailable(f"{method} {path}: {type(error).__name__}: {error}") from error
        if response.status_code not in (200, 201):
            raise GatewayUnavailable(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError as error:
            raise GatewayUnavailable(f"{method} {path}: not JSON: {response.text[:200]}") from error
        if not isinstance(body, dict):
            raise GatewayUnavailable(f"{method} {path}: not a JSON object: {response.text[:200]}")
        return body
