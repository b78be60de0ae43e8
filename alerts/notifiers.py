"""Notifiers: deliver one outbox payload to one receiver, or say why not.

A notifier either returns (the receiver accepted it) or raises `DeliveryError`; `permanent`
tells the outbox not to try again (a 4xx other than 408/429, a refused recipient), everything
else is retried with backoff. Both carry the outbox's idempotency key (the `Idempotency-Key`
header; the email's Message-ID), so a receiver can drop the duplicate that a crash between
"sent" and "marked delivered" can cause.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol

import httpx

from alerts import render

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Finsent-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class DeliveryError(Exception):
    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Notifier(Protocol):
    name: str

    def send(self, payload: dict[str, Any], idempotency_key: str) -> None: ...


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes that are sent and signed."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header_value: str) -> bool:
    """For receivers: does the signature header match the raw body? (constant-time)"""
    return hmac.compare_digest(sign(secret, body), header_value or "")


@dataclass
class WebhookNotifier:
    name: str
    url: str
    secret: str = field(default="", repr=False)
    timeout_s: float = 10.0
    tries: int = 3
    backoff_s: float = 0.5
    user_agent: str = "finsent-alerts/1"

    def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        body = encode_payload(payload)
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: idempotency_key,
            "User-Agent": self.user_agent,
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        last = "no attempt"
        for attempt in range(1, max(1, self.tries) + 1):
            try:
                response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    return
                last = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    raise DeliveryError(f"{self.url} refused the notification: {last}", permanent=True)
            if attempt < self.tries:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise DeliveryError(f"{self.url}: {last} after {self.tries} tries")


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    security: str = "starttls"  # none, starttls, tls
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = "finsent@localhost"
    timeout_s: float = 15.0
    ca_file: Path | None = None

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)


@dataclass
class EmailNotifier:
    name: str
    smtp: SmtpConfig
    to: list[str]

    def message(self, payload: dict[str, Any], idempotency_key: str) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = render.subject(payload)
        message["From"] = self.smtp.sender
        message["To"] = ", ".join(self.to)
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = f"<{idempotency_key}@finsent>"
        message.set_content(render.text_body(payload))
        message.add_alternative(render.html_body(payload), subtype="html")
        return message

    def send(self, payload: dict[str, Any], idempotency_key: str) -> None:
        if not self.to:
            raise DeliveryError("no recipients configured", permanent=True)
        message = self.message(payload, idempotency_key)
        try:
            with self._connect() as client:
                if self.smtp.username:
                    client.login(self.smtp.username, self.smtp.password)
                refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"all recipients refused: {sorted(exc.recipients)}", permanent=True) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP authentication failed ({exc.smtp_code})", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if refused:
            # Others took it, so resending would duplicate it for them: delivered, with a warning.
            log.warning(
                "some recipients refused the alert email",
                extra={"event": "email_partly_refused", "receiver": self.name, "refused": sorted(refused)},
            )

    def _connect(self) -> smtplib.SMTP:
        config = self.smtp
        if config.security == "tls":
            return smtplib.SMTP_SSL(
                config.host, config.port, timeout=config.timeout_s, context=config.tls_context()
            )
        client = smtplib.SMTP(config.host, config.port, timeout=config.timeout_s)
        try:
            if config.security == "starttls":
                client.starttls(context=config.tls_context())
        except BaseException:
            client.close()
            raise
        return client
