"""The life of one alert: pending → firing → resolved, with hysteresis against flapping.

In the spirit of Prometheus Alertmanager:
- an alert starts *pending* when the score reaches `fire_above` with enough volume, and fires
  once it stayed at or above `resolve_below` for `for`; a pending alert whose score drops below
  `resolve_below` is *cancelled* (nobody was told about it);
- a firing alert resolves only after its score stayed below `resolve_below` for
  `keep_firing_for`. A series hovering around `fire_above` therefore stays one firing alert
  instead of a storm of fire/resolve pairs: the band between the two thresholds and the hold
  time are the anti-flapping.

`observe` changes the row in place and returns the transition, so the caller can record it and
decide about notifications in the same transaction.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime

from alerts.rules import Rule
from connectors.db.schema import Alert

PENDING, FIRING, RESOLVED, CANCELLED = "pending", "firing", "resolved", "cancelled"
OPEN_STATES = (PENDING, FIRING)


@dataclass(frozen=True)
class Observation:
    """What the detector saw for one key in one scan."""

    key: str
    score: float  # NaN: no usable value (too little volume, no data)
    value: float | None
    volume: float
    baseline_median: float
    baseline_scale: float

    @property
    def elevated_score(self) -> float:
        return 0.0 if math.isnan(self.score) else self.score


def fingerprint(rule_name: str, key: str) -> str:
    return hashlib.sha256(f"{rule_name}\x1f{key}".encode()).hexdigest()


def labels_of(alert: Alert) -> dict[str, str]:
    """The labels silences match and group_by groups on."""
    return {
        "rule": alert.rule,
        "severity": alert.severity,
        "dimension": alert.dimension,
        "metric": alert.metric,
        "key": alert.series_key,
    }


def _summary(rule: Rule, obs: Observation) -> str:
    what = {
        "volume": "news volume",
        "negative_volume": "negative news volume",
        "negative_share": "share of negative news",
        "mean_sentiment": "mean sentiment",
    }.get(rule.metric, rule.metric)
    value = "n/a" if obs.value is None else f"{obs.value:.3g}"
    return (
        f"{what} for {rule.dimension} {obs.key} is {value} over the last {rule.bucket_s / 60:g} min "
        f"(usual {obs.baseline_median:.3g}; {rule.detector} score {obs.elevated_score:.1f}, "
        f"{obs.volume:g} items)"
    )


def start(rule: Rule, obs: Observation, now: datetime) -> Alert | None:
    """A new pending (or at once firing) alert, if this observation crosses the threshold."""
    if obs.elevated_score < rule.fire_above or obs.volume < rule.min_volume:
        return None
    alert = Alert(
        fingerprint=fingerprint(rule.name, obs.key),
        rule=rule.name,
        dimension=rule.dimension,
        series_key=obs.key,
        metric=rule.metric,
        state=PENDING,
        severity=rule.severity,
        score=obs.elevated_score,
        peak_score=obs.elevated_score,
        value=obs.value,
        started_at=now,
        updated_at=now,
        notified_state="",
    )
    _record(alert, rule, obs, now)
    if rule.for_s <= 0:
        alert.state, alert.fired_at = FIRING, now
    return alert


def observe(alert: Alert, rule: Rule, obs: Observation, now: datetime) -> str | None:
    """Advance an open alert by one observation; the new state if it changed, else None."""
    _record(alert, rule, obs, now)
    above_band = obs.elevated_score >= rule.resolve_below
    if alert.state == PENDING:
        if not above_band:
            alert.state, alert.resolved_at = CANCELLED, now
            return CANCELLED
        if (now - alert.started_at).total_seconds() >= rule.for_s:
            alert.state, alert.fired_at = FIRING, now
            return FIRING
        return None
    if above_band:
        alert.below_since = None
        return None
    if alert.below_since is None:
        alert.below_since = now
    if (now - alert.below_since).total_seconds() >= rule.keep_firing_for_s:
        alert.state, alert.resolved_at = RESOLVED, now
        return RESOLVED
    return None


def _record(alert: Alert, rule: Rule, obs: Observation, now: datetime) -> None:
    alert.score = obs.elevated_score
    alert.peak_score = max(alert.peak_score or 0.0, obs.elevated_score)
    alert.value = obs.value
    alert.updated_at = now
    if obs.elevated_score >= rule.resolve_below or not alert.summary:
        alert.summary = _summary(rule, obs)
    alert.details = {
        "detector": rule.detector,
        "fire_above": rule.fire_above,
        "resolve_below": rule.resolve_below,
        "bucket_s": rule.bucket_s,
        "baseline_s": rule.baseline_s,
        "volume": obs.volume,
        "baseline_median": _finite(obs.baseline_median),
        "baseline_scale": _finite(obs.baseline_scale),
    }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value
