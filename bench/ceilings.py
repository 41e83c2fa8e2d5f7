"""The machine's own limits, measured in the same run as BinPay's figures.

- a bare Django view doing one PostgreSQL INSERT, under the initiator's gunicorn settings (a
  throwaway project generated in a temporary folder), driven by the same wrk script;
- the Firestore emulator: plain writes and read-then-write transactions on distinct documents;
- the Pub/Sub emulator: publish rate, streaming-pull rate, and one hop's latency (publish ->
  streaming-pull callback) at a low constant rate.

The emulator figures go through the same Python clients BinPay uses, from a pool of threads.
"""

from __future__ import annotations

import runpy
import secrets
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import load
import psycopg

ROOT = Path(__file__).resolve().parents[1]

BARE_SETTINGS = """
import os

import dj_database_url

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bare_app"
INSTALLED_APPS = []
MIDDLEWARE = []
USE_TZ = True
DATABASES = {{
    "default": dj_database_url.parse(
        os.environ["DATABASE_URL"], conn_max_age={conn_max_age}, conn_health_checks=True
    )
}}
"""

BARE_APP = """
import uuid

from django.db import connection
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST


@require_POST
def insert(request):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_row (id, user_id, amount) VALUES (%s, %s, %s)",
            [uuid.uuid4(), int(request.POST["user_id"]), request.POST["amount"]],
        )
    return JsonResponse({"status": "pending"}, status=202)


urlpatterns = [path("initiate-payment", insert)]
"""


def initiator_gunicorn_flags(stack_command: list[str]) -> list[str]:
    """The initiator web's gunicorn settings: its gunicorn.conf.py, overridden by the stack's flags."""
    conf = runpy.run_path(str(ROOT / "initiator" / "gunicorn.conf.py"))
    flags = {"--workers": str(conf.get("workers", 1)), "--timeout": str(conf.get("timeout", 30))}
    for index, arg in enumerate(stack_command[:-1]):
        if arg in flags:
            flags[arg] = stack_command[index + 1]
    return [
        *[item for pair in flags.items() for item in pair],
        "--worker-class",
        conf.get("worker_class", "sync"),
        "--threads",
        str(conf.get("threads", 1)),
    ]


def bare_django_insert(
    server_url: str, tmp: Path, gunicorn_flags: list[str], conn_max_age: int, users: list[int], seconds: float, env
) -> dict:
    """req/s and latency of the bare view under wrk with BinPay's connections and request body."""
    database = f"bench_bare_{secrets.token_hex(3)}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    url = server_url.rsplit("/", 1)[0] + "/" + database
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE bench_row (id uuid PRIMARY KEY, user_id bigint NOT NULL, amount text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
    project = tmp / "bare_django"
    project.mkdir()
    (project / "bare_settings.py").write_text(textwrap.dedent(BARE_SETTINGS.format(conn_max_age=conn_max_age)))
    (project / "bare_app.py").write_text(textwrap.dedent(BARE_APP))
    (project / "wsgi.py").write_text(
        "import os\n\nfrom django.core.wsgi import get_wsgi_application\n\n"
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bare_settings")\n'
        "application = get_wsgi_application()\n"
    )
    port = load.free_port()
    server = load.start_process(
        [sys.executable, "-m", "gunicorn", *gunicorn_flags, "-b", f"127.0.0.1:{port}", "wsgi:application"],
        cwd=project,
        env={**env, "DATABASE_URL": url, "PYTHONPATH": str(project)},
        log=tmp / "bare_django.log",
    )
    try:
        load.wait_http(f"http://127.0.0.1:{port}/initiate-payment", expect_status=405)
        load.run_wrk(f"http://127.0.0.1:{port}/initiate-payment", "none", users, seconds=2, tmp=tmp)  # warm-up
        result = load.run_wrk(f"http://127.0.0.1:{port}/initiate-payment", "none", users, seconds=seconds, tmp=tmp)
    finally:
        load.stop_process(server)
    return result


def firestore_rates(project_id: str, writes: int, transactions: int, threads: int = 16) -> dict:
    from google.cloud import firestore

    client = firestore.Client(project=project_id)
    collection = client.collection(f"bench-{uuid.uuid4().hex[:8]}")

    def write(_index: int) -> None:
        collection.document(uuid.uuid4().hex).set({"state": "RECEIVED", "version": 1, "steps_done": ["RECEIVED"]})

    def transact(_index: int) -> None:
        ref = collection.document(uuid.uuid4().hex)

        @firestore.transactional
        def run(transaction):
            snapshot = ref.get(transaction=transaction)
            version = (snapshot.to_dict() or {}).get("version", 0) if snapshot.exists else 0
            transaction.set(ref, {"state": "CHARGED", "version": version + 1})

        run(client.transaction())

    result = {}
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(50)))  # warm-up: channels open, JIT warm
        for name, function, count in (("write", write, writes), ("transaction", transact, transactions)):
            started = time.perf_counter()
            list(pool.map(function, range(count)))
            result[f"{name}s_per_s"] = count / (time.perf_counter() - started)
    result["threads"] = threads
    client.close()
    return result


def pubsub_rates(project_id: str, messages: int, hop_messages: int, hop_rate: float) -> dict:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    suffix = uuid.uuid4().hex[:8]
    topic = publisher.topic_path(project_id, f"bench-{suffix}")
    subscription = subscriber.subscription_path(project_id, f"bench-{suffix}")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=60)
    body = b'{"event_type":"payment.initiated","payment_id":"' + uuid.uuid4().hex.encode() + b'"' + b" " * 200 + b"}"

    started = time.perf_counter()
    futures = [publisher.publish(topic, body, event_type="payment.initiated") for _ in range(messages)]
    for future in futures:
        future.result(timeout=60)
    publish_rate = messages / (time.perf_counter() - started)

    received = 0
    all_received = threading.Event()
    lock = threading.Lock()

    def count(message) -> None:
        nonlocal received
        message.ack()
        with lock:
            received += 1
            if received == messages:
                all_received.set()

    started = time.perf_counter()
    stream = subscriber.subscribe(
        subscription, callback=count, flow_control=pubsub_v1.types.FlowControl(max_messages=1000)
    )
    all_received.wait(timeout=120)
    pull_rate = received / (time.perf_counter() - started)
    stream.cancel()
    stream.result()

    # One hop: publish -> callback, at a low constant rate (what a single saga step waits for).
    hops: list[float] = []

    def hop(message) -> None:
        hops.append(time.time() - float(message.attributes["sent"]))
        message.ack()

    stream = subscriber.subscribe(subscription, callback=hop)
    time.sleep(1)
    for _ in range(hop_messages):
        time.sleep(1 / hop_rate)
        publisher.publish(topic, body, sent=repr(time.time()))
    deadline = time.monotonic() + 30
    while len(hops) < hop_messages and time.monotonic() < deadline:
        time.sleep(0.1)
    stream.cancel()
    stream.result()
    subscriber.delete_subscription(subscription=subscription)
    publisher.delete_topic(topic=topic)
    subscriber.close()
    publisher.stop()
    hop_ms = sorted(value * 1000 for value in hops)
    return {
        "publish_per_s": publish_rate,
        "streaming_pull_per_s": pull_rate,
        "pulled": received,
        "hop_p50_ms": load.percentile(hop_ms, 50),
        "hop_p99_ms": load.percentile(hop_ms, 99),
        "hop_rate_per_s": hop_rate,
    }
