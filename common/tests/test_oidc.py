"""binpay_common.oidc: which header counts, what is refused before anything is fetched, and how often
Google's certificates are fetched; with keys made for this run and certificates served by a local
HTTP server (the services' own suites repeat the HTTP-facing cases against their live processes)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from binpay_common.oidc import ExpectedCaller, Refusal, TokenRefused, verify_caller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

AUDIENCE = "https://processor.binpay.test/pubsub/push"
PUSH_ACCOUNT = "pubsub-push@binpay-test.iam.gserviceaccount.com"
INVOKER = "deployer@binpay-test.iam.gserviceaccount.com"
GOOGLE_LIKE = "public, max-age=20000, must-revalidate, no-transform"


def _key_and_certificate(name: str) -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private, certificate.public_bytes(serialization.Encoding.PEM).decode()


class CertsServer:
    """One endpoint per `endpoint` call, with its certificates, Cache-Control and status; GETs counted."""

    def __init__(self) -> None:
        self.endpoints: dict[str, dict] = {}
        self.fetches: Counter[str] = Counter()
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                endpoint = served.endpoints[self.path]
                served.fetches[self.path] += 1
                body = json.dumps(endpoint["body"]).encode()
                self.send_response(endpoint["status"])
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if endpoint["cache_control"]:
                    self.send_header("Cache-Control", endpoint["cache_control"])
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def endpoint(self, body: object, cache_control: str | None = GOOGLE_LIKE, status: int = 200) -> str:
        path = f"/certs/{uuid.uuid4().hex}"
        self.endpoints[path] = {"body": body, "cache_control": cache_control, "status": status}
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def count(self, url: str) -> int:
        return self.fetches[urlsplit(url).path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def keys() -> Iterator[dict]:
    private, certificate = _key_and_certificate("signer")
    rotated_private, rotated_certificate = _key_and_certificate("signer-2")
    stranger_private, _ = _key_and_certificate("stranger")
    server = CertsServer()
    yield {
        "signer": crypt.RSASigner.from_string(private, key_id="kid-1"),
        "rotated": crypt.RSASigner.from_string(rotated_private, key_id="kid-2"),
        "stranger": crypt.RSASigner.from_string(stranger_private, key_id="kid-1"),
        "stranger_key": stranger_private,
        "certificates": {"kid-1": certificate},
        "rotated_certificate": rotated_certificate,
        "server": server,
    }
    server.close()


def token(signer, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "email": PUSH_ACCOUNT,
        "email_verified": True,
        **claims,
    }
    return jwt.encode(signer, payload).decode()


def stripped(signed: str) -> str:
    """What a private Cloud Run service receives after its IAM check."""
    return signed.rsplit(".", 1)[0] + ".SIGNATURE_REMOVED_BY_GOOGLE"


def unsigned(**claims) -> str:
    """A token anyone can write: claims, no key."""

    def segment(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    payload = {"iss": "accounts.google.com", "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
    return f"{segment({'alg': 'RS256', 'typ': 'JWT'})}.{segment(payload)}.SIGNATURE_REMOVED_BY_GOOGLE"


def expected(certs_url: str, *, behind_cloud_run_iam: bool = False) -> ExpectedCaller:
    return ExpectedCaller(AUDIENCE, PUSH_ACCOUNT, certs_url, behind_cloud_run_iam)


def refusal(headers: dict[str, str], caller: ExpectedCaller) -> Refusal | None:
    try:
        verify_caller(headers, caller)
    except TokenRefused as refused:
        return refused.refusal
    return None


# -- which header counts --------------------------------------------------------------------------


def test_behind_cloud_run_iam_the_token_is_taken_from_the_header_cloud_run_checked(keys) -> None:
    caller = expected(keys["server"].endpoint(keys["certificates"]), behind_cloud_run_iam=True)
    invoker = stripped(token(keys["signer"], email=INVOKER))
    push = stripped(token(keys["signer"]))
    forged = unsigned(email=PUSH_ACCOUNT, email_verified=True)

    cases = {
        # Cloud Run checked X-Serverless-Authorization and left Authorization unchecked.
        "invoker's token checked, forged push token beside it": (
            {"X-Serverless-Authorization": f"Bearer {invoker}", "Authorization": f"Bearer {forged}"},
            Refusal.WRONG_ACCOUNT,
        ),
        "push token checked, anything beside it": (
            {"X-Serverless-Authorization": f"Bearer {push}", "Authorization": "Bearer whatever"},
            None,
        ),
        "push token in Authorization alone (what Pub/Sub sends)": ({"Authorization": f"Bearer {push}"}, None),
        "push token in X-Serverless-Authorization alone": ({"X-Serverless-Authorization": f"Bearer {push}"}, None),
        "empty X-Serverless-Authorization: Authorization is the checked one": (
            {"X-Serverless-Authorization": "", "Authorization": f"Bearer {push}"},
            None,
        ),
        "no token": ({}, Refusal.MISSING),
    }
    assert {name: refusal(headers, caller) for name, (headers, _) in cases.items()} == {
        name: outcome for name, (_, outcome) in cases.items()
    }


def test_outside_cloud_run_only_a_signed_token_in_authorization_counts(keys) -> None:
    caller = expected(keys["server"].endpoint(keys["certificates"]))
    signed = token(keys["signer"])

    assert refusal({"Authorization": f"Bearer {signed}"}, caller) is None
    assert refusal({"X-Serverless-Authorization": f"Bearer {signed}"}, caller) is Refusal.MISSING
    # Nobody checked a stripped signature here.
    assert refusal({"Authorization": f"Bearer {stripped(signed)}"}, caller) is Refusal.INVALID
    assert refusal({"Authorization": f"Bearer {token(keys['stranger'])}"}, caller) is Refusal.INVALID


def test_a_token_that_still_has_its_signature_is_verified_even_behind_cloud_run_iam(keys) -> None:
    caller = expected(keys["server"].endpoint(keys["certificates"]), behind_cloud_run_iam=True)

    assert refusal({"X-Serverless-Authorization": f"Bearer {token(keys['stranger'])}"}, caller) is Refusal.INVALID
    assert refusal({"X-Serverless-Authorization": f"Bearer {token(keys['signer'])}"}, caller) is None


# -- what is refused before anything is fetched ---------------------------------------------------


def test_tokens_refused_on_sight_fetch_no_certificates(keys) -> None:
    url = keys["server"].endpoint(keys["certificates"])
    caller = expected(url)
    now = int(time.time())
    header_without_key = base64.urlsafe_b64encode(b'{"alg":"RS256"}').rstrip(b"=").decode()
    hs256 = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"kid-1"}').rstrip(b"=").decode()
    payload = token(keys["signer"]).split(".")[1]
    on_sight = {
        "not a JWT": "a.b.c",
        "two segments": "eyJhbGciOiJSUzI1NiJ9.e30",
        "not JSON": "bm90.anNvbg.c2ln",
        "no key id": f"{header_without_key}.{payload}.c2ln",
        "not RS256": f"{hs256}.{payload}.c2ln",
        "wrong audience": token(keys["signer"], aud="https://elsewhere.test"),
        "audience list": token(keys["signer"], aud=[AUDIENCE]),
        "wrong issuer": token(keys["signer"], iss="https://evil.test"),
        "expired": token(keys["signer"], iat=now - 7200, exp=now - 3600),
        "not yet valid": token(keys["signer"], iat=now + 3600, exp=now + 7200),
        "no expiry": token(keys["signer"], exp=None),
    }

    outcomes = {name: refusal({"Authorization": f"Bearer {value}"}, caller) for name, value in on_sight.items()}

    assert outcomes == dict.fromkeys(on_sight, Refusal.INVALID)
    assert keys["server"].count(url) == 0


# -- how often the certificates are fetched --------------------------------------------------------


def test_certificates_are_fetched_once_while_their_max_age_lasts(keys) -> None:
    url = keys["server"].endpoint(keys["certificates"])
    caller = expected(url)

    outcomes = [refusal({"Authorization": f"Bearer {token(keys['signer'])}"}, caller) for _ in range(5)]

    assert outcomes == [None] * 5
    assert keys["server"].count(url) == 1


@pytest.mark.parametrize("cache_control", [None, "no-store", "max-age=0", "private, no-cache"])
def test_certificates_the_endpoint_does_not_let_us_keep_are_fetched_per_check(keys, cache_control) -> None:
    url = keys["server"].endpoint(keys["certificates"], cache_control=cache_control)
    caller = expected(url)

    outcomes = [refusal({"Authorization": f"Bearer {token(keys['signer'])}"}, caller) for _ in range(3)]

    assert outcomes == [None] * 3
    assert keys["server"].count(url) == 3


def test_a_rotated_key_refreshes_the_cached_certificates_once_and_made_up_keys_do_not(keys) -> None:
    url = keys["server"].endpoint(keys["certificates"])
    caller = expected(url)
    assert refusal({"Authorization": f"Bearer {token(keys['signer'])}"}, caller) is None
    keys["server"].endpoints[urlsplit(url).path]["body"]["kid-2"] = keys["rotated_certificate"]

    rotated = refusal({"Authorization": f"Bearer {token(keys['rotated'])}"}, caller)
    fetched = keys["server"].count(url)
    made_up = [
        refusal(
            {"Authorization": f"Bearer {token(crypt.RSASigner.from_string(keys['stranger_key'], key_id=f'x-{n}'))}"},
            caller,
        )
        for n in range(10)
    ]

    assert (rotated, fetched) == (None, 2)
    assert made_up == [Refusal.INVALID] * 10
    assert keys["server"].count(url) == fetched


@pytest.mark.parametrize(
    "endpoint",
    [
        {"body": {"error": "boom"}, "status": 503},
        {"body": ["not", "a", "mapping"]},
    ],
    ids=["5xx", "not-a-mapping"],
)
def test_certificates_that_cannot_be_had_are_a_transient_refusal(keys, endpoint) -> None:
    url = keys["server"].endpoint(**endpoint)

    assert refusal({"Authorization": f"Bearer {token(keys['signer'])}"}, expected(url)) is Refusal.UNAVAILABLE


def test_an_unreachable_certificate_endpoint_is_a_transient_refusal(keys) -> None:
    with pytest.raises(TokenRefused) as refused:
        verify_caller({"Authorization": f"Bearer {token(keys['signer'])}"}, expected("http://127.0.0.1:9/certs"))

    assert (refused.value.refusal, refused.value.status) == (Refusal.UNAVAILABLE, 503)
    assert "127.0.0.1" not in refused.value.message
