"""The alert cycle as the scheduler and the CLI run it: scan, then deliver the outbox.

Receivers are built here from the settings (the only place that sees the SMTP password and the
webhook secret); the alerts layer gets them as plain arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from alerts.notifiers import EmailNotifier, Notifier, SmtpConfig, WebhookNotifier
from alerts.outbox import DeliveryPolicy, DeliveryReport, deliver_due
from alerts.rules import current_rules
from alerts.scan import ScanReport, scan
from connectors.db.schema import utcnow
from pipeline.settings import Settings
from pipeline.telemetry import metrics

log = logging.getLogger(__name__)


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    notifiers: dict[str, Notifier] = {}
    if settings.smtp_host and settings.alert_email_to:
        smtp = SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else "",
            sender=settings.smtp_from,
            timeout_s=settings.smtp_timeout_s,
            ca_file=settings.smtp_ca_file,
        )
        notifiers["email"] = EmailNotifier("email", smtp, list(settings.alert_email_to))
    if settings.alert_webhook_url:
        notifiers["webhook"] = WebhookNotifier(
            "webhook",
            settings.alert_webhook_url,
            secret=settings.alert_webhook_secret.get_secret_value() if settings.alert_webhook_secret else "",
            timeout_s=settings.alert_webhook_timeout_s,
            tries=settings.alert_webhook_tries,
        )
    return notifiers


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        backoff_s=settings.alert_retry_backoff_s,
        backoff_max_s=settings.alert_retry_backoff_max_s,
        max_age_s=settings.alert_notification_max_age_s,
    )


def run_scan(
    settings: Settings,
    engine: Engine,
    now: datetime | None = None,
    notifiers: Mapping[str, Notifier] | None = None,
) -> ScanReport:
    receivers = notifiers if notifiers is not None else build_notifiers(settings)
    return scan(engine, current_rules(engine), receivers.keys(), now or utcnow())


def run_delivery(
    settings: Settings,
    engine: Engine,
    now: datetime | None = None,
    notifiers: Mapping[str, Notifier] | None = None,
) -> DeliveryReport:
    receivers = notifiers if notifiers is not None else build_notifiers(settings)
    return deliver_due(engine, receivers, now, delivery_policy(settings))


def run_alert_cycle(settings: Settings, engine: Engine, now: datetime | None = None) -> dict[str, Any]:
    """One scan and one delivery run; a failing receiver never stops the scan."""
    notifiers = build_notifiers(settings)
    report = run_scan(settings, engine, now, notifiers)
    delivery = run_delivery(settings, engine, now, notifiers)
    for rule in report.fired_rules:
        metrics.ALERTS_FIRED.labels(rule).inc()
    for receiver, result in delivery.outcomes:
        metrics.NOTIFICATIONS.labels(receiver, result).inc()
    outcome = {
        **report.as_dict(),
        "delivered": delivery.delivered,
        "deferred": delivery.deferred,
        "failed": delivery.failed,
    }
    log.info("alert scan", extra={"event": "alert_scan", **outcome})
    return outcome
