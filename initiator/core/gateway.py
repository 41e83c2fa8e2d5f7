"""HTTP client of the payment gateway (protocol in docs/contracts.md); the reconciler only reads."""

import requests
from django.conf import settings


class GatewayUnavailable(Exception):
    """The gateway could not answer now (connection, timeout, 5xx or an unexpected answer)."""


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
        """Every charge made with this reference, oldest first."""
        try:
            response = self.session.get(
                f"{self.base_url}/v1/charges", params={"reference": reference}, timeout=self.timeout
            )
        except requests.RequestException as error:
            raise GatewayUnavailable(f"{type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise GatewayUnavailable(f"GET /v1/charges answered {response.status_code}: {response.text[:200]}")
        try:
            charges = response.json()["data"]
        except (ValueError, KeyError, TypeError) as error:
            raise GatewayUnavailable(f"unexpected charge list: {response.text[:200]}") from error
        if not isinstance(charges, list):
            raise GatewayUnavailable(f"unexpected charge list: {response.text[:200]}")
        return charges
