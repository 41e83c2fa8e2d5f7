"""/readyz uses only what the processor's roles grant (get_topic would need pubsub.topics.get, which they do not).

Every gRPC call /readyz makes against the real emulators is recorded, mapped to the IAM permission
Google checks for it, and compared with what deploy/iam.json says the processor's roles grant.
"""

from __future__ import annotations

import json

import grpc
import pytest
from binpay_processor import create_app
from binpay_processor.clients import Clients
from binpay_processor.config import Settings
from conftest import REPO_DIR

# The permission Google checks for each API method (Pub/Sub and Firestore access control references).
METHOD_PERMISSIONS = {
    "/google.pubsub.v1.Publisher/GetTopic": "pubsub.topics.get",
    "/google.pubsub.v1.Publisher/Publish": "pubsub.topics.publish",
    "/google.iam.v1.IAMPolicy/TestIamPermissions": None,
    "/google.firestore.v1.Firestore/BatchGetDocuments": "datastore.entities.get",
    "/google.firestore.v1.Firestore/GetDocument": "datastore.entities.get",
    "/google.firestore.v1.Firestore/RunQuery": "datastore.entities.list",
}


class _Recorder(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self) -> None:
        self.methods: list[str] = []

    def _record(self, continuation, details, request):
        self.methods.append(details.method)
        return continuation(details, request)

    intercept_unary_unary = intercept_unary_stream = _record
    intercept_stream_unary = intercept_stream_stream = _record


def granted_permissions(identity: str) -> set[str]:
    iam = json.loads((REPO_DIR / "deploy" / "iam.json").read_text())
    roles = {grant["role"] for grant in iam["identities"][identity]}
    return {permission for role in roles for permission in iam["roles"].get(role, [])}


@pytest.fixture
def recorded_clients(base_config, monkeypatch):
    """Fresh clients whose every gRPC channel records the methods called on it (the emulators answer)."""
    recorder = _Recorder()
    insecure_channel = grpc.insecure_channel
    monkeypatch.setattr(
        grpc,
        "insecure_channel",
        lambda *args, **kwargs: grpc.intercept_channel(insecure_channel(*args, **kwargs), recorder),
    )
    clients = Clients(Settings.from_env(environ={}, overrides=base_config))
    yield clients, recorder
    clients.close()


def test_readyz_calls_only_what_the_processors_roles_grant(config, recorded_clients):
    clients, recorder = recorded_clients
    app = create_app(test_config=config, clients=clients)

    response = app.test_client().get("/readyz")

    assert response.status_code == 200, response.get_json()
    assert recorder.methods, "the readiness check made no API call: nothing was checked"
    unknown = sorted(set(recorder.methods) - set(METHOD_PERMISSIONS))
    assert not unknown, f"map these methods to their IAM permission first: {unknown}"
    needed = {METHOD_PERMISSIONS[method] for method in recorder.methods} - {None}
    missing = needed - granted_permissions("binpay-processor")
    assert not missing, f"/readyz needs {sorted(missing)}, which the processor's roles do not grant"
