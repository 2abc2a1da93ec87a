"""Fixtures for testing webhookd_client against a real server.

The server is given by WEBHOOKD_GRPC_ADDR, WEBHOOKD_HTTP_ADDR and WEBHOOKD_ADMIN_TOKEN (as set by
scripts/test-clients); tests marked `server` are skipped when they are missing. Each test gets
its own account, so tests do not see each other's webhooks.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, Iterator, List, Optional

import pytest

from webhookd_client import WebhookdClient


@dataclass
class Server:
    grpc_addr: str
    http_addr: str
    admin_token: str

    def create_token(self, account_id: str, scopes: Optional[List[str]] = None) -> str:
        """Creates an account token through the admin REST API."""
        body = json.dumps(
            {"account_id": account_id, "scopes": scopes or ["webhooks:read", "webhooks:write"]}
        ).encode()
        req = urllib.request.Request(
            f"http://{self.http_addr}/admin/v1/tokens",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.admin_token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 201, resp.status
            created = json.load(resp)
        assert created["account_id"] == account_id
        return created["token"]


@pytest.fixture(scope="session")
def server() -> Server:
    env = {k: os.environ.get(k) for k in ("WEBHOOKD_GRPC_ADDR", "WEBHOOKD_HTTP_ADDR", "WEBHOOKD_ADMIN_TOKEN")}
    missing = [k for k, v in env.items() if not v]
    if missing:
        pytest.skip(f"no webhookd server ({', '.join(missing)} unset; scripts/test-clients sets them)")
    return Server(env["WEBHOOKD_GRPC_ADDR"], env["WEBHOOKD_HTTP_ADDR"], env["WEBHOOKD_ADMIN_TOKEN"])  # type: ignore[arg-type]


@pytest.fixture
def new_client(server: Server) -> Iterator[Callable[..., WebhookdClient]]:
    """Makes clients of fresh accounts: new_client() or new_client(scopes=[...])."""
    clients: List[WebhookdClient] = []

    def make(scopes: Optional[List[str]] = None) -> WebhookdClient:
        token = server.create_token(f"py-{uuid.uuid4().hex[:12]}", scopes)
        c = WebhookdClient(server.grpc_addr, token)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def client(new_client: Callable[..., WebhookdClient]) -> WebhookdClient:
    return new_client()


@dataclass
class Recorded:
    method: str
    path: str
    headers: Dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook target on 127.0.0.1 that answers `status` and records every request."""

    url: str
    status: int = 200
    requests: List[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, n: int, timeout: float = 10.0) -> List[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.01)
        raise AssertionError(f"receiver got {len(self.requests)} requests, wanted {n}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with rec.lock:
                rec.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
            self.send_response(rec.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    rec.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield rec
    httpd.shutdown()
    httpd.server_close()
