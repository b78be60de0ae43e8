"""Detector maths against hand-computed values; rule, duration and matcher parsing."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from alerts import lifecycle
from alerts.detectors import DetectorSpec, Direction, Standardised, standardise, standardise_proportion
from alerts.detectors import score as detector_score
from alerts.lifecycle import Observation
from alerts.rules import RuleError, builtin_rules, parse_duration, rule_from_spec
from alerts.silences import SilenceError, matches_all, parse_matcher

MAD_SCALE = 1.4826  # 1 / Phi^-1(3/4): MAD -> standard deviation of a normal


def _std(values: list[float], floor: float = 0.0) -> Standardised:
    array = np.array([values], dtype=float)  # one key
    return standardise(array, np.full(array.shape, floor))


def score(spec: DetectorSpec, st: Standardised, direction: Direction) -> float:
    return float(detector_score(spec, st, direction)[0])


def test_robust_z_is_distance_from_the_median_in_mad_units() -> None:
    # baseline 1,2,3,4: median 2.5, MAD = median(1.5, .5, .5, 1.5) = 1 -> scale 1.4826
    st = _std([1, 2, 3, 4, 100])
    assert st.median[0] == 2.5
    assert st.scale[0] == pytest.approx(MAD_SCALE, rel=1e-4)
    assert score(DetectorSpec("robust_z"), st, "up") == pytest.approx(97.5 / MAD_SCALE, rel=1e-4)
    assert score(DetectorSpec("robust_z"), st, "down") == pytest.approx(-97.5 / MAD_SCALE, rel=1e-4)


def test_ewma_by_hand() -> None:
    # e (in units of 1/1.4826) = -1.5, -0.5, 0.5, 1.5, 97.5; lambda 0.5 from z = 0:
    # -0.75, -0.625, -0.0625, 0.71875, 49.109375; divided by sqrt(0.5 / 1.5)
    st = _std([1, 2, 3, 4, 100])
    expected = 49.109375 / MAD_SCALE / math.sqrt(1 / 3)
    assert score(DetectorSpec("ewma", ewma_lambda=0.5), st, "up") == pytest.approx(expected, rel=1e-4)


def test_cusum_catches_a_persistent_moderate_shift_that_z_calls_noise() -> None:
    # baseline of zeros: MAD 0, so the floor (1) is the scale; e = 0,0,0,0,0,2,2,2
    st = _std([0, 0, 0, 0, 0, 2, 2, 2], floor=1.0)
    assert score(DetectorSpec("robust_z"), st, "up") == pytest.approx(2.0)
    # S = max(0, S + e - 0.5): 0 ... 0, 1.5, 3.0, 4.5
    assert score(DetectorSpec("cusum", cusum_k=0.5), st, "up") == pytest.approx(4.5)
    # EWMA lambda 0.5: 1, 1.5, 1.75 -> / sqrt(1/3)
    assert score(DetectorSpec("ewma", ewma_lambda=0.5), st, "up") == pytest.approx(1.75 / math.sqrt(1 / 3))
    assert score(DetectorSpec("cusum"), st, "down") == 0.0


def test_missing_points_are_skipped_and_a_missing_newest_point_has_no_score() -> None:
    st = _std([0, math.nan, 0, 0, 3], floor=1.0)
    assert st.median[0] == 0.0
    assert score(DetectorSpec("cusum", cusum_k=0.5), st, "up") == pytest.approx(2.5)
    assert math.isnan(score(DetectorSpec("robust_z"), _std([1, 2, math.nan]), "up"))
    assert math.isnan(score(DetectorSpec("robust_z"), _std([math.nan, math.nan, 3]), "up"))


def test_many_keys_are_scored_at_once_each_against_its_own_baseline() -> None:
    values = np.array([[1, 2, 3, 4, 100], [0, 0, 0, 0, 3], [5, 5, 5, 5, np.nan]], dtype=float)
    st = standardise(values, np.ones(values.shape))
    scores = detector_score(DetectorSpec("robust_z"), st, "up")
    assert scores[0] == pytest.approx(97.5 / MAD_SCALE, rel=1e-4) and scores[1] == 3.0
    assert math.isnan(scores[2])


def test_both_directions_take_the_larger_excursion() -> None:
    st = _std([0, 0, 0, 0, -6], floor=1.0)
    assert score(DetectorSpec("robust_z"), st, "both") == pytest.approx(6.0)


def test_durations_and_rules_validate() -> None:
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("1d") == 86400
    assert parse_duration(45) == 45.0
    with pytest.raises(RuleError, match="not a duration"):
        parse_duration("soon")
    base = {"name": "r", "dimension": "ticker", "metric": "volume", "bucket": "10m", "baseline": "2h"}
    rule = rule_from_spec(base)
    assert rule.points == 13 and rule.receivers == ("email", "webhook")
    assert rule_from_spec({**base, "metric": "mean_sentiment"}).direction == "down"
    with pytest.raises(RuleError, match="resolve_below must not exceed fire_above"):
        rule_from_spec({**base, "fire_above": 2, "resolve_below": 3})
    with pytest.raises(RuleError, match="unknown field 'treshold'"):
        rule_from_spec({**base, "treshold": 3})
    with pytest.raises(RuleError, match="metric must be one of"):
        rule_from_spec({**base, "metric": "vibes"})
    with pytest.raises(RuleError, match="not a usable label"):
        rule_from_spec({**base, "negative_label": "x'); DROP TABLE articles; --"})
    with pytest.raises(RuleError, match="missing baseline_s"):
        rule_from_spec({k: v for k, v in base.items() if k != "baseline"})
    assert {r.name for r in builtin_rules()} >= {"ticker-negative-surge", "topic-negative-shift"}
    assert rule_from_spec(rule.to_spec()) == rule  # the stored form reads back unchanged


def test_matchers() -> None:
    labels = {"rule": "ticker-negative-surge", "key": "AAPL", "severity": "critical"}
    assert matches_all([parse_matcher("key=AAPL")], labels)
    assert not matches_all([parse_matcher("key=AAPL"), parse_matcher("severity!=critical")], labels)
    assert matches_all([parse_matcher("key=~AAPL|MSFT")], labels)
    assert not matches_all([parse_matcher("key=~AAP")], labels)  # a full match, not a search
    with pytest.raises(SilenceError, match="unknown label"):
        parse_matcher("ticker=AAPL")
    with pytest.raises(SilenceError, match="bad regular expression"):
        parse_matcher("key=~(")


def test_lifecycle_pending_for_then_firing_then_hold_before_resolving() -> None:
    rule = rule_from_spec(
        {
            "name": "r",
            "dimension": "ticker",
            "metric": "volume",
            "bucket": "10m",
            "baseline": "2h",
            "fire_above": 4,
            "resolve_below": 2,
            "for": "5m",
            "keep_firing_for": "10m",
            "min_volume": 3,
        }
    )
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def obs(s: float, volume: float = 10) -> Observation:
        return Observation("AAPL", s, 1.0, volume, 1.0, 1.0)

    assert lifecycle.start(rule, obs(9, volume=2), t0) is None  # too little volume
    assert lifecycle.start(rule, obs(3.9), t0) is None
    alert = lifecycle.start(rule, obs(5), t0)
    assert alert is not None and alert.state == "pending"
    assert lifecycle.observe(alert, rule, obs(3), t0 + timedelta(minutes=2)) is None  # in the band
    assert lifecycle.observe(alert, rule, obs(3), t0 + timedelta(minutes=5)) == "firing"
    assert lifecycle.observe(alert, rule, obs(1), t0 + timedelta(minutes=6)) is None  # below: held
    assert lifecycle.observe(alert, rule, obs(4.5), t0 + timedelta(minutes=10)) is None  # back up
    assert alert.below_since is None
    assert lifecycle.observe(alert, rule, obs(1), t0 + timedelta(minutes=11)) is None
    assert lifecycle.observe(alert, rule, obs(math.nan), t0 + timedelta(minutes=21)) == "resolved"
    assert alert.peak_score == 5

    cancelled = lifecycle.start(rule, obs(5), t0)
    assert cancelled is not None
    assert lifecycle.observe(cancelled, rule, obs(1), t0 + timedelta(minutes=1)) == "cancelled"


def test_shares_are_binomial_z_scores_against_the_pooled_baseline_share() -> None:
    # baseline: 1 negative in 10, four times -> p0 = 0.1; newest 4 in 10:
    # z = (0.4 - 0.1) / sqrt(0.1 * 0.9 / 10) = 3.1623; no extra-binomial spread (phi = 1)
    st = standardise_proportion(np.array([[1, 1, 1, 1, 4]]), np.array([[10, 10, 10, 10, 10]]))
    assert st.median[0] == pytest.approx(0.1)
    assert score(DetectorSpec("robust_z"), st, "up") == pytest.approx(0.3 / math.sqrt(0.009), rel=1e-4)
    # a sparse topic: shares 0, 0, 1, 0 from one item each (median 0, mean 0.25) and a quiet
    # newest window at 0.25 reads as usual (z = 0), not as a rise above the median
    sparse = standardise_proportion(np.array([[0, 0, 1, 0, 1]]), np.array([[1, 1, 1, 1, 4]]))
    assert sparse.median[0] == pytest.approx(0.25)
    assert score(DetectorSpec("robust_z"), sparse, "up") == pytest.approx(0.0)
    # overdispersed baseline: |z| of 0/10 and 2/10 against p0 = 0.1 is 1.054; phi = 1.054 / 0.6745
    wide = standardise_proportion(np.array([[0, 2, 0, 2, 4]]), np.array([[10, 10, 10, 10, 10]]))
    phi = (0.1 / math.sqrt(0.009)) / 0.6745
    assert score(DetectorSpec("robust_z"), wide, "up") == pytest.approx(
        0.3 / math.sqrt(0.009) / phi, rel=1e-4
    )
