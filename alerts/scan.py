"""One anomaly scan: evaluate every rule at `now`, advance the alerts, queue notifications.

Everything a scan changes (alerts, their history, the outbox rows reporting them) is written in
one transaction: a scan that dies half-way leaves no trace, and a notification exists exactly
when the change it reports does. Delivery is a separate step (`alerts.outbox.deliver_due`).

Notifications are grouped per rule and the rule's `group_by` labels (one message for five
tickers firing together), repeated for an unchanged firing alert only after
`repeat_interval`, and withheld while a silence matches; a resolution is sent only to those who
were told about the firing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import warnings
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts import lifecycle, outbox, silences
from alerts.detectors import score, standardise, standardise_proportion
from alerts.lifecycle import CANCELLED, FIRING, OPEN_STATES, PENDING, RESOLVED, Observation
from alerts.rules import Rule
from alerts.series import SeriesQuery, SeriesSet, live_version, read_series
from connectors.db.schema import Alert, AlertEvent

log = logging.getLogger(__name__)
_warned: set[tuple[str, tuple[str, ...]]] = set()  # log a missing receiver once per process


@dataclass
class ScanReport:
    rules: int = 0
    keys: int = 0
    transitions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    notifications: int = 0
    silenced: int = 0
    # Key-points not judged because another model version labelled them (until the backfill
    # has re-labelled them): visible in the job's outcome, so a worker stuck on an old version
    # that keeps series mixed does not switch alerts off unseen.
    mixed_points: int = 0
    fired_rules: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "keys": self.keys,
            "transitions": dict(self.transitions),
            "notifications": self.notifications,
            "silenced": self.silenced,
            "mixed_points": self.mixed_points,
        }


def _floors(metric: str, values: NDArray[np.float64], volume: NDArray[np.float64]) -> NDArray[np.float64]:
    """The smallest scale each point may have: the sampling noise of its volume (see detectors).

    Counts: Poisson, sqrt of the usual count (at least 1). Mean signed score: 0.5 / sqrt(n).
    (Shares have their own binomial standardisation.) One row per key.
    """
    if metric not in ("volume", "negative_volume"):
        return np.asarray(0.5 / np.sqrt(np.maximum(volume, 1.0)), dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row without any baseline value
        usual = np.nan_to_num(np.nanmedian(values[:, :-1], axis=1), nan=0.0)[:, None]
    return np.broadcast_to(np.sqrt(np.maximum(usual, 1.0)), values.shape)


def evaluate(
    engine: Engine,
    rule: Rule,
    now: datetime,
    cache: dict[SeriesQuery, SeriesSet] | None = None,
    version: str | None = None,
) -> list[Observation]:
    """The rule's detector on every key that has data in its window, all keys at once. Rules
    reading the same series (dimension, bucket, baseline) share one query through `cache`.
    With `version`, only points that model version labelled entirely are judged or compared."""
    query = rule.series_query()
    series = cache.get(query) if cache is not None else None
    if series is None:
        series = read_series(engine, query, now, version)
        if cache is not None:
            cache[query] = series
    rows = [i for i, key in enumerate(series.keys) if not rule.keys or key in rule.keys]
    if not rows:
        return []
    values, volume = (m[rows] for m in series.matrix(rule.metric))
    if rule.metric == "negative_share":
        standardised = standardise_proportion(series.negative[rows], volume)
    else:
        standardised = standardise(values, _floors(rule.metric, values, volume))
    scores = score(rule.detector_spec, standardised, rule.direction)
    enough = volume[:, -1] >= max(rule.min_volume, 1)
    return [
        Observation(
            key=series.keys[i],
            score=float(scores[j]) if enough[j] else math.nan,
            value=None if math.isnan(values[j, -1]) else float(values[j, -1]),
            volume=float(volume[j, -1]),
            baseline_median=float(standardised.median[j]),
            baseline_scale=float(standardised.scale[j]),
        )
        for j, i in enumerate(rows)
    ]


def _no_data(key: str) -> Observation:
    return Observation(key, math.nan, None, 0.0, math.nan, math.nan)


def _event(session: Session, alert: Alert, event: str, now: datetime, note: str = "") -> None:
    session.add(
        AlertEvent(alert_id=alert.id, event=event, at=now, score=alert.score, value=alert.value, note=note)
    )


def _transition(
    session: Session, alert: Alert, state: str, now: datetime, report: ScanReport, note: str = ""
) -> None:
    """Record a state change in the alert's history and the scan's report."""
    _event(session, alert, state, now, note)
    report.transitions[state] += 1
    if state == FIRING:
        report.fired_rules.append(alert.rule)


def scan(
    engine: Engine,
    rules: Iterable[Rule],
    receivers: Collection[str],
    now: datetime,
    like_with_like: bool = True,
) -> ScanReport:
    report = ScanReport()
    enabled = {rule.name: rule for rule in rules if rule.enabled}
    cache: dict[SeriesQuery, SeriesSet] = {}
    # Like with like: after a promotion, the new model's labels are judged only against a
    # baseline it labelled too (the backfill re-labels history), never against the old model's.
    version = live_version(engine, now) if like_with_like else None
    observed = {name: evaluate(engine, rule, now, cache, version) for name, rule in enabled.items()}
    report.mixed_points = sum(int(s.mixed.sum()) for s in cache.values() if s.mixed is not None)
    if report.mixed_points:
        log.warning(
            "series points labelled by another model version were not judged",
            extra={"event": "scan_mixed_versions", "version": version, "points": report.mixed_points},
        )
    with Session(engine) as session, session.begin():
        open_alerts = {
            (a.rule, a.series_key): a
            for a in session.scalars(select(Alert).where(Alert.state.in_(OPEN_STATES)).order_by(Alert.id))
        }
        touched: list[tuple[Alert, Rule]] = []
        for name, rule in enabled.items():
            report.rules += 1
            observations = {obs.key: obs for obs in observed[name]}
            report.keys += len(observations)
            stale = [key for (rule_name, key) in open_alerts if rule_name == name and key not in observations]
            for key in stale:
                observations[key] = _no_data(key)
            for key, obs in observations.items():
                alert = open_alerts.pop((name, key), None)
                if alert is None:
                    alert = lifecycle.start(rule, obs, now)
                    if alert is None:
                        continue
                    session.add(alert)
                    session.flush()
                    _transition(session, alert, PENDING, now, report)
                    if alert.state == FIRING:
                        _transition(session, alert, FIRING, now, report)
                else:
                    change = lifecycle.observe(alert, rule, obs, now)
                    if change:
                        _transition(session, alert, change, now, report)
                touched.append((alert, rule))
        for alert in open_alerts.values():  # their rule was removed or disabled
            alert.state, alert.resolved_at, alert.updated_at = (
                RESOLVED if alert.state == FIRING else CANCELLED,
                now,
                now,
            )
            _transition(session, alert, alert.state, now, report, note="rule disabled or removed")
        _queue_notifications(session, touched, receivers, now, report)
    return report


def _queue_notifications(
    session: Session,
    touched: list[tuple[Alert, Rule]],
    receivers: Collection[str],
    now: datetime,
    report: ScanReport,
) -> None:
    active_silences = silences.active(session, now)
    groups: dict[tuple[str, ...], list[tuple[Alert, Rule]]] = defaultdict(list)
    for alert, rule in touched:
        labels = lifecycle.labels_of(alert)
        silenced_by = [sid for sid, matchers in active_silences if silences.matches_all(matchers, labels)]
        if alert.state == FIRING:
            due = alert.notified_state != FIRING or (
                alert.last_notified_at is not None
                and (now - alert.last_notified_at).total_seconds() >= rule.repeat_interval_s
            )
        else:
            # Only alerts still open at the start of this scan are touched: RESOLVED means just now.
            due = alert.state == RESOLVED and alert.notified_state == FIRING
        if not due:
            continue
        if silenced_by:
            alert.details = {**alert.details, "silenced_by": silenced_by}
            report.silenced += 1
            continue
        group = (rule.name, *(labels[label] for label in rule.group_by if label != "rule"))
        groups[group].append((alert, rule))
    for group, members in groups.items():
        rule = members[0][1]
        targets = [r for r in rule.receivers if r in receivers]
        missing = [r for r in rule.receivers if r not in receivers]
        if missing and (rule.name, tuple(missing)) not in _warned:
            _warned.add((rule.name, tuple(missing)))
            log.warning(
                "rule names receivers that are not configured",
                extra={"event": "receivers_missing", "rule": rule.name, "receivers": missing},
            )
        if not targets:
            continue
        alerts = [alert for alert, _ in members]
        group_key = "/".join(group)
        payload = _payload(group_key, alerts, now)
        key = _idempotency_key(group_key, alerts, now)
        for receiver in targets:
            outbox.enqueue(session, receiver, key, payload, group_key, alerts[0].id, now)
            report.notifications += 1
        for alert in alerts:
            alert.notified_state, alert.last_notified_at = alert.state, now
            _event(session, alert, "notified", now, note=",".join(targets))


def _idempotency_key(group_key: str, alerts: list[Alert], now: datetime) -> str:
    parts = [group_key, now.isoformat(), *(f"{a.id}:{a.state}" for a in alerts)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _payload(group_key: str, alerts: list[Alert], now: datetime) -> dict[str, Any]:
    return {
        "version": 1,
        "group_key": group_key,
        "status": FIRING if any(a.state == FIRING for a in alerts) else RESOLVED,
        "generated_at": now.isoformat(),
        "alerts": [
            {
                "id": a.id,
                "rule": a.rule,
                "dimension": a.dimension,
                "key": a.series_key,
                "metric": a.metric,
                "state": a.state,
                "severity": a.severity,
                "summary": a.summary,
                "score": round(a.score, 3),
                "peak_score": round(a.peak_score, 3),
                "value": a.value,
                "started_at": _iso(a.started_at),
                "fired_at": _iso(a.fired_at),
                "resolved_at": _iso(a.resolved_at),
                "details": a.details,
            }
            for a in alerts
        ],
    }
