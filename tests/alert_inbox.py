"""Real local endpoints that receive the pipeline's alerts: an SMTP server (aiosmtpd) and an HTTP webhook, both on
127.0.0.1 with a free port, each stopping itself when its ``with`` block ends.

Each yields an inbox and the Airflow connection (JSON, as ``AIRFLOW_CONN_<ID>`` takes it) that points at it; the
``alert_inbox`` fixture (conftest.py) sets the SMTP one as :data:`SMTP_CONN_ID`, which :data:`SMTP_ALERTS` (a
config's ``alerts`` section) sends to.
"""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SMTP_CONN_ID = "mlops_alerts_smtp"
SMTP_ALERTS = {"smtp": {"conn_id": SMTP_CONN_ID, "to": ["oncall@mlops.test"]}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpInbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    @staticmethod
    def body(message: EmailMessage) -> str:
        return message.get_body(("html", "plain")).get_content()


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpInbox, str]]:
    """An SMTP server on 127.0.0.1 (no TLS, no auth) and the connection that reaches it."""
    from aiosmtpd.controller import Controller

    inbox = SmtpInbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    connection = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "airflow@mlops.test", "timeout": 10},
    }
    try:
        yield inbox, json.dumps(connection)
    finally:
        controller.stop()


@contextmanager
def webhook_server() -> Iterator[tuple[list[dict[str, Any]], str]]:
    """An HTTP server on 127.0.0.1 recording each POSTed JSON body (with its path), and the connection to it."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        timeout = 10

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"path": self.path, "json": json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep the test output to the pipeline's own
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    connection = {"conn_type": "http", "host": f"http://127.0.0.1:{server.server_address[1]}"}
    try:
        yield received, json.dumps(connection)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
