"""A stand-in for Secret Manager's REST API over real HTTP: projects.secrets.addVersion only.

Google ships no Secret Manager emulator. This server answers `POST /v1/projects/{p}/secrets/{s}:addVersion`
as the REST reference describes it (https://cloud.google.com/secret-manager/docs/reference/rest/v1/
projects.secrets/addVersion): body `{"payload": {"data": base64}}`, answer a SecretVersion; a secret that
does not exist answers 404 NOT_FOUND. It checks the request the official client sends, not Google's
behaviour beyond that (IAM, replication, CRC checks are not modelled).
"""

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ADD_VERSION = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/:]+):addVersion$")


class FakeSecretManager:
    def __init__(self, secrets: set[str]) -> None:
        self.secrets = set(secrets)
        self.versions: dict[str, list[bytes]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                match = _ADD_VERSION.match(self.path.split("?", 1)[0])
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if match is None:
                    return self._answer(
                        404, {"error": {"code": 404, "message": "no such method", "status": "NOT_FOUND"}}
                    )
                project, secret = match.groups()
                if secret not in fake.secrets:
                    message = f"Secret [projects/{project}/secrets/{secret}] not found or has no versions."
                    return self._answer(404, {"error": {"code": 404, "message": message, "status": "NOT_FOUND"}})
                stored = fake.versions.setdefault(secret, [])
                stored.append(base64.b64decode(body["payload"]["data"]))
                name = f"projects/{project}/secrets/{secret}/versions/{len(stored)}"
                return self._answer(200, {"name": name, "createTime": "2026-12-02T00:00:00Z", "state": "ENABLED"})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
