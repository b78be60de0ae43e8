"""Series SQL, the scan's alert lifecycle, grouping, anti-flapping and silences, on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts import silences
from alerts.rules import Rule, rule_from_spec
from alerts.scan import scan
from alerts.series import SeriesQuery, read_series
from connectors.db.schema import Alert, AlertEvent, AlertNotification
from tests.alert_helpers import Item, store

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
RECEIVERS = {"email", "webhook"}


def _volume_rule(**changes: object) -> Rule:
    spec: dict[str, object] = {
        "name": "vol",
        "dimension": "ticker",
        "metric": "volume",
        "bucket": "10m",
        "baseline": "6h",
        "detector": "robust_z",
        "fire_above": 4,
        "resolve_below": 2,
        "min_volume": 1,
        "keep_firing_for": "20m",
        "repeat_interval": "1d",
        "receivers": ["email", "webhook"],
    }
    spec.update(changes)
    return rule_from_spec(spec)


def _steady(ticker: str, start: datetime, hours: int, per_10min: int = 1) -> list[Item]:
    return [
        Item(start + timedelta(minutes=10 * b + 1 + i), "neutral", "Markets", [ticker])
        for b in range(hours * 6)
        for i in range(per_10min)
    ]


def _notifications(engine: Engine) -> list[AlertNotification]:
    with Session(engine) as session:
        return list(session.scalars(select(AlertNotification).order_by(AlertNotification.id)))


def _alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def test_series_counts_per_window_aligned_to_now(engine: Engine) -> None:
    now = T0 + timedelta(hours=3)
    items = [
        Item(now, "negative", "Earnings", ["AAPL"]),  # exactly at `now`: in the newest window
        Item(now - timedelta(minutes=5), "positive", "Earnings", ["AAPL", "MSFT"]),
        Item(now - timedelta(minutes=10), "negative", "Macro", ["AAPL"]),  # boundary: window 1
        Item(now - timedelta(minutes=25), "neutral", "Macro", ["MSFT"]),
        Item(now - timedelta(minutes=30), "negative", "Macro", ["AAPL"]),  # (now-30m, now]: out
        Item(now + timedelta(minutes=1), "negative", "Macro", ["AAPL"]),  # the future: out
    ]
    store(engine, items)
    tickers = read_series(engine, SeriesQuery("ticker", 600, 3), now)
    assert tickers.keys == ["AAPL", "MSFT"]
    assert tickers.volume.tolist() == [[0, 1, 2], [1, 0, 1]]
    assert tickers.negative.tolist() == [[0, 1, 1], [0, 0, 0]]
    share, rated = tickers.values("negative_share", "AAPL")
    assert share[0] != share[0] and share[1:].tolist() == [1.0, 0.5] and rated.tolist() == [0, 1, 2]
    mean, _ = tickers.values("mean_sentiment", "AAPL")  # signed = P(positive) - P(negative)
    assert mean[2] == pytest.approx(0.0) and mean[1] == pytest.approx(-0.7)
    topics = read_series(engine, SeriesQuery("topic", 600, 3), now)
    assert topics.keys == ["Earnings", "Macro"]
    assert topics.volume.tolist() == [[0, 0, 2], [1, 1, 0]]


def test_a_surge_fires_once_notifies_grouped_and_resolves(engine: Engine) -> None:
    store(engine, _steady("AAPL", T0, 6) + _steady("MSFT", T0, 6) + _steady("TSLA", T0, 6))
    surge_at = T0 + timedelta(hours=6)
    store(
        engine,
        [
            Item(surge_at + timedelta(seconds=20 * i), "negative", "Legal", ["AAPL", "MSFT"])
            for i in range(12)
        ],
    )
    rule = _volume_rule()
    before = scan(engine, [rule], RECEIVERS, surge_at - timedelta(minutes=1))
    assert dict(before.transitions) == {}
    during = scan(engine, [rule], RECEIVERS, surge_at + timedelta(minutes=5))
    assert dict(during.transitions) == {"pending": 2, "firing": 2}
    notes = _notifications(engine)
    assert [n.receiver for n in notes] == ["email", "webhook"]  # one message per receiver for both keys
    assert {a["key"] for a in notes[0].payload["alerts"]} == {"AAPL", "MSFT"}
    assert notes[0].payload["status"] == "firing" and notes[0].idempotency_key == notes[1].idempotency_key
    for minute in (7, 9, 12):  # still firing, unchanged: no repeat before repeat_interval
        scan(engine, [rule], RECEIVERS, surge_at + timedelta(minutes=minute))
    assert len(_notifications(engine)) == 2
    for minute in range(15, 60, 5):
        scan(engine, [rule], RECEIVERS, surge_at + timedelta(minutes=minute))
    alerts = _alerts(engine)
    assert [(a.series_key, a.state) for a in alerts] == [("AAPL", "resolved"), ("MSFT", "resolved")]
    assert all(a.peak_score >= 4 and a.fired_at is not None for a in alerts)
    notes = _notifications(engine)
    assert len(notes) == 4 and notes[-1].payload["status"] == "resolved"
    with Session(engine) as session:
        events = session.scalars(
            select(AlertEvent.event).where(AlertEvent.alert_id == alerts[0].id).order_by(AlertEvent.id)
        ).all()
    assert events == ["pending", "firing", "notified", "resolved", "notified"]


@pytest.mark.parametrize("hysteresis", [True, False])
def test_a_series_hovering_at_the_threshold_is_one_alert_not_a_storm(
    engine: Engine, hysteresis: bool
) -> None:
    store(engine, _steady("AAPL", T0, 6))
    start = T0 + timedelta(hours=6)
    # 10-minute windows alternate between 6 items (score 5, above 4) and 4 items (score 3)
    hovering = [
        Item(start + timedelta(minutes=10 * b + 1 + i), "negative", "Legal", ["AAPL"])
        for b in range(8)
        for i in range(6 if b % 2 == 0 else 4)
    ]
    store(engine, hovering)
    rule = _volume_rule() if hysteresis else _volume_rule(resolve_below=4, keep_firing_for=0)
    for b in range(8):
        scan(engine, [rule], RECEIVERS, start + timedelta(minutes=10 * b + 9))
    fired = [a for a in _alerts(engine) if a.fired_at is not None]
    if hysteresis:
        assert len(fired) == 1 and fired[0].state == "firing"
        assert len(_notifications(engine)) == 2  # one per receiver
    else:  # the same data without the band: the storm the band prevents
        assert len(fired) == 4  # fire, resolve, fire, resolve ... every window
        assert len(_notifications(engine)) == 2 * 8


def test_a_silence_withholds_matching_alerts_until_it_lapses(engine: Engine) -> None:
    store(engine, _steady("AAPL", T0, 6) + _steady("MSFT", T0, 6))
    start = T0 + timedelta(hours=6)
    store(
        engine,
        [
            Item(start + timedelta(minutes=m, seconds=s), "negative", "Legal", ["AAPL", "MSFT"])
            for m in range(60)
            for s in (0, 30)
        ],
    )  # 20 items per 10 minutes for an hour: both keys keep firing
    silences.create(
        engine,
        [silences.parse_matcher("key=AAPL"), silences.parse_matcher("rule=vol")],
        timedelta(minutes=30),
        starts_at=start,
    )
    rule = _volume_rule()
    scan(engine, [rule], RECEIVERS, start + timedelta(minutes=10))
    first = _notifications(engine)
    assert {a["key"] for n in first for a in n.payload["alerts"]} == {"MSFT"}
    scan(engine, [rule], RECEIVERS, start + timedelta(minutes=29))
    assert len(_notifications(engine)) == 2  # AAPL still silenced
    aapl = next(a for a in _alerts(engine) if a.series_key == "AAPL")
    assert aapl.state == "firing" and aapl.notified_state == "" and aapl.details["silenced_by"]
    scan(engine, [rule], RECEIVERS, start + timedelta(minutes=31))  # the silence has lapsed
    later = _notifications(engine)[2:]
    assert len(later) == 2 and {a["key"] for a in later[0].payload["alerts"]} == {"AAPL"}


def test_only_configured_receivers_get_rows_and_low_volume_never_fires(engine: Engine) -> None:
    store(
        engine,
        _steady("AAPL", T0, 6, per_10min=0)
        + [Item(T0 + timedelta(hours=6, minutes=1), "negative", "Legal", ["AAPL"]) for _ in range(5)],
    )
    rule = _volume_rule(min_volume=6)
    report = scan(engine, [rule], {"webhook"}, T0 + timedelta(hours=6, minutes=5))
    assert dict(report.transitions) == {}  # score 5 against a baseline of 0, but below min_volume
    fires = _volume_rule(min_volume=5, name="vol5")
    scan(engine, [fires], {"webhook"}, T0 + timedelta(hours=6, minutes=5))
    assert [n.receiver for n in _notifications(engine)] == ["webhook"]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Alert)) == 1
