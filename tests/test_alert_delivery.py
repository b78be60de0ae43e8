"""Notifications reach real receivers: an SMTP server (aiosmtpd) and an HTTP server, started by
the tests; the outbox delivers each alert exactly once across a receiver outage and a restart."""

from __future__ import annotations

import email
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.notifiers import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    DeliveryError,
    EmailNotifier,
    SmtpConfig,
    WebhookNotifier,
    verify_signature,
)
from alerts.outbox import DeliveryPolicy, counts, deliver_due
from alerts.rules import rule_from_spec
from alerts.scan import scan
from connectors.db.engine import make_engine
from connectors.db.schema import AlertNotification
from tests.alert_helpers import Hooks, Item, store
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cret-shared-key"
T0 = datetime(2026, 3, 2, tzinfo=UTC)


class Inbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.messages.append(email.message_from_bytes(raw, policy=default_policy))  # type: ignore[arg-type]
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    receiver = Hooks()
    receiver.start()
    yield receiver
    receiver.stop()


def _payload(n: int = 1) -> dict[str, Any]:
    return {
        "version": 1,
        "group_key": "ticker-negative-surge",
        "status": "firing",
        "generated_at": "2026-03-02T10:00:00+00:00",
        "alerts": [
            {
                "id": 40 + i,
                "rule": "ticker-negative-surge",
                "dimension": "ticker",
                "key": key,
                "state": "firing",
                "severity": "critical",
                "summary": f"negative news volume for ticker {key} is 14 <b>& rising</b>",
                "fired_at": "2026-03-02T09:58:00+00:00",
            }
            for i, key in enumerate(["AAPL", "MSFT"][:n])
        ],
    }


def test_email_reaches_a_real_smtp_server_with_text_and_html() -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        notifier = EmailNotifier(
            "email",
            SmtpConfig(host="127.0.0.1", port=port, security="none", sender="alerts@desk.example"),
            ["risk@desk.example", "quant@desk.example"],
        )
        notifier.send(_payload(2), "key-123")
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert sorted(inbox.envelopes[0].rcpt_tos) == ["quant@desk.example", "risk@desk.example"]
    assert message["Subject"] == "[finsent FIRING:2] ticker-negative-surge (AAPL, MSFT)"
    assert message["Message-ID"] == "<key-123@finsent>"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "[FIRING] critical ticker-negative-surge ticker=AAPL" in text and "alert #41" in text
    assert "ticker=MSFT" in html and "&lt;b&gt;&amp; rising&lt;/b&gt;" in html  # escaped, not markup


def test_email_over_starttls_with_authentication(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    seen: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password.decode()))
        ok = data.password == b"right"
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    try:
        config = SmtpConfig(
            host="127.0.0.1", port=port, security="starttls", username="desk", password="right", ca_file=cert
        )
        EmailNotifier("email", config, ["risk@desk.example"]).send(_payload(), "k1")
        bad = SmtpConfig(
            host="127.0.0.1", port=port, security="starttls", username="desk", password="wrong", ca_file=cert
        )
        with pytest.raises(DeliveryError, match="authentication failed") as refused:
            EmailNotifier("email", bad, ["risk@desk.example"]).send(_payload(), "k2")
        assert refused.value.permanent
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    assert seen[0] == ("desk", "right") and set(seen[1:]) == {("desk", "wrong")}  # smtplib tries PLAIN, LOGIN


def test_webhook_is_signed_and_carries_an_idempotency_key(hooks: Hooks) -> None:
    WebhookNotifier("webhook", hooks.url, secret=SECRET).send(_payload(), "idem-1")
    [(headers, body)] = hooks.received
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify_signature("another-secret", body, headers[SIGNATURE_HEADER])
    assert not verify_signature(SECRET, body + b" ", headers[SIGNATURE_HEADER])
    assert headers[IDEMPOTENCY_HEADER] == "idem-1"
    assert json.loads(body)["alerts"][0]["key"] == "AAPL"


def test_webhook_retries_with_backoff_then_gives_up_on_client_errors(hooks: Hooks) -> None:
    hooks.status = 503
    notifier = WebhookNotifier("webhook", hooks.url, tries=3, backoff_s=0.05)
    with pytest.raises(DeliveryError, match="HTTP 503 after 3 tries") as busy:
        notifier.send(_payload(), "k")
    assert not busy.value.permanent
    hooks.status = 400
    with pytest.raises(DeliveryError, match="refused") as refused:
        notifier.send(_payload(), "k")
    assert refused.value.permanent


def _fire_alerts(engine: Any, keys: list[str], at: datetime) -> None:
    rule = rule_from_spec(
        {
            "name": "surge",
            "dimension": "ticker",
            "metric": "volume",
            "bucket": "10m",
            "baseline": "2h",
            "fire_above": 4,
            "min_volume": 3,
            "group_by": ["rule", "key"],  # one notification per key
            "receivers": ["webhook"],
        }
    )
    store(engine, [Item(at - timedelta(minutes=1, seconds=i), "negative", "Legal", keys) for i in range(8)])
    scan(engine, [rule], {"webhook"}, at)


def test_receiver_down_then_back_gets_every_alert_exactly_once_across_a_restart(
    hooks: Hooks, sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    _fire_alerts(engine, ["AAPL", "MSFT", "TSLA"], datetime.now(UTC))
    assert counts(engine) == {"pending": 3}
    port = hooks.port
    hooks.stop()  # the receiver is down: connection refused
    notifiers = {
        "webhook": WebhookNotifier(
            "webhook", f"http://127.0.0.1:{port}/finsent", SECRET, tries=2, backoff_s=0.01
        )
    }
    policy = DeliveryPolicy(backoff_s=0.01, backoff_max_s=0.05)
    first = deliver_due(engine, notifiers, policy=policy)
    assert (first.delivered, first.deferred) == (0, 3)  # one failed try, then the others wait
    more = deliver_due(engine, notifiers, now=datetime.now(UTC) + timedelta(seconds=1), policy=policy)
    assert more.delivered == 0
    with Session(engine) as session:
        rows = list(session.scalars(select(AlertNotification).order_by(AlertNotification.id)))
    assert [r.attempts for r in rows] == [2, 0, 0] and "ConnectError" in rows[0].last_error
    engine.dispose()

    hooks.port = port
    hooks.start()  # back, and a new scheduler process delivers: the CLI in a subprocess
    env = {
        "FINSENT_HOME": str(tmp_path / "home"),
        "FINSENT_DATABASE_URL": sqlite_url,
        "FINSENT_ALERT_WEBHOOK_URL": hooks.url,
        "FINSENT_ALERT_WEBHOOK_SECRET": SECRET,
        "FINSENT_LOG_FORMAT": "text",
        "PATH": "/usr/bin:/bin",
    }
    import time

    time.sleep(0.1)  # past the row's backoff
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "alerts", "deliver"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert SECRET not in result.stdout + result.stderr  # logs never carry the secret
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["delivered"] == 3 and report["outbox"] == {"delivered": 3}
    again = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "alerts", "deliver"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert json.loads(again.stdout.strip().splitlines()[-1])["delivered"] == 0
    keys = [json.loads(body)["alerts"][0]["key"] for _, body in hooks.received]
    assert sorted(keys) == ["AAPL", "MSFT", "TSLA"]  # each once, none lost
    assert len({headers[IDEMPOTENCY_HEADER] for headers, _ in hooks.received}) == 3
    assert all(verify_signature(SECRET, body, headers[SIGNATURE_HEADER]) for headers, body in hooks.received)
