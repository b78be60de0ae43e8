"""Anomaly detectors on one series: robust z-score, EWMA and CUSUM.

All three share one standardisation, so their thresholds read in the same unit (robust standard
deviations) and one series can be judged by any of them:

    e_j = (x_j - median(baseline)) / max(1.4826 * MAD(baseline), floor_j)

The series is ordered oldest → newest; its last point is the window being judged and the points
before it are the trailing baseline. The floor keeps a sparse series (a ticker mentioned twice a
day: median 0, MAD 0) from turning one item into an infinite score: counts get a Poisson floor
(sqrt of the median, at least 1), shares and means a sampling floor (c / sqrt(volume)).

- `robust_z`: e of the newest point. Reacts at once; forgets at once.
- `ewma`: exponentially weighted mean of e over the window (lambda), divided by its asymptotic
  standard deviation sqrt(lambda / (2 - lambda)); a control chart in the same unit as z.
- `cusum`: one-sided tabular CUSUM S_j = max(0, S_{j-1} + e_j - k); catches a moderate shift that
  persists (a topic's negative share doubling for two hours) that z alone would call noise.

Direction "down" negates e, so a fall (mean sentiment turning negative) reads as a positive score.
Points without enough volume are NaN: they do not enter the baseline, and EWMA/CUSUM skip them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

Direction = Literal["up", "down", "both"]
DETECTORS = ("robust_z", "ewma", "cusum")
MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): the MAD of a normal sample times this is its sigma


@dataclass(frozen=True)
class Standardised:
    """Series in robust units, one row per key, and the baseline behind each row."""

    e: NDArray[np.float64]  # (keys, points)
    median: NDArray[np.float64]  # (keys,)
    scale: NDArray[np.float64]  # (keys,): the scale the newest point was divided by


@dataclass(frozen=True)
class DetectorSpec:
    """Which detector and its parameters; thresholds belong to the rule, not here."""

    kind: str = "robust_z"
    ewma_lambda: float = 0.3
    cusum_k: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in DETECTORS:
            raise ValueError(f"unknown detector {self.kind!r}; choose one of {', '.join(DETECTORS)}")
        if not 0 < self.ewma_lambda <= 1:
            raise ValueError("ewma_lambda must be in (0, 1]")
        if self.cusum_k < 0:
            raise ValueError("cusum_k must be >= 0")


def standardise(values: NDArray[np.float64], floors: NDArray[np.float64]) -> Standardised:
    """Standardise every point of each row against that row's baseline (all points but the last).

    Rows (keys) are processed together: a scan judges hundreds of tickers at once.
    """
    values = np.atleast_2d(np.asarray(values, dtype=float))
    floors = np.broadcast_to(np.atleast_2d(np.asarray(floors, dtype=float)), values.shape)
    baseline = values[:, :-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no baseline, NaN scores
        median = np.nanmedian(baseline, axis=1)
        mad = MAD_TO_SIGMA * np.nanmedian(np.abs(baseline - median[:, None]), axis=1)
    scale = np.maximum(mad[:, None], floors)
    e = (values - median[:, None]) / scale
    return Standardised(e, median, scale[:, -1])


def standardise_proportion(successes: NDArray[np.float64], trials: NDArray[np.float64]) -> Standardised:
    """Shares (negative items / rated items) as overdispersed-binomial z-scores.

    The median of per-window shares is a poor centre when windows are small (a topic with three
    items an hour has a median share of 0 and a mean above it, so every window reads as a rise
    and CUSUM drifts upwards). Instead: the pooled baseline share p0 = sum(successes) /
    sum(trials); z_j = (share_j - p0) / sqrt(p0 (1 - p0) / n_j); and the extra-binomial spread
    of real news (phi = median |z| of the baseline / 0.6745, at least 1) divides it out.
    """
    successes = np.atleast_2d(np.asarray(successes, dtype=float))
    trials = np.atleast_2d(np.asarray(trials, dtype=float))
    base_s, base_n = successes[:, :-1].sum(axis=1), trials[:, :-1].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p0 = np.where(base_n > 0, base_s / base_n, np.nan)
        p = np.clip(p0, 0.01, 0.99)[:, None]
        se = np.sqrt(p * (1 - p) / np.maximum(trials, 1.0))
        z = np.where(trials > 0, (successes / trials - p0[:, None]) / se, np.nan)
        phi = np.nanmedian(np.abs(z[:, :-1]), axis=1) / 0.6745
    phi = np.where(np.isnan(phi), 1.0, np.maximum(phi, 1.0))
    return Standardised(z / phi[:, None], p0, se[:, -1] * phi)


def robust_z(e: NDArray[np.float64]) -> NDArray[np.float64]:
    return e[:, -1]


def ewma(e: NDArray[np.float64], lam: float) -> NDArray[np.float64]:
    """EWMA of e along each row (missing points count as 0, i.e. 'as usual'), in units of its
    own asymptotic standard deviation."""
    filled = np.nan_to_num(e, nan=0.0)
    smoothed = lfilter([lam], [1.0, -(1.0 - lam)], filled, axis=1)
    return np.asarray(smoothed[:, -1] / math.sqrt(lam / (2.0 - lam)), dtype=float)


def cusum(e: NDArray[np.float64], k: float) -> NDArray[np.float64]:
    total = np.zeros(e.shape[0])
    for column in e.T:
        step = np.maximum(0.0, total + column - k)
        total = np.where(np.isnan(column), total, step)
    return total


def score(spec: DetectorSpec, standardised: Standardised, direction: Direction) -> NDArray[np.float64]:
    """The detector's score for each row's newest point; NaN where that point has no value."""
    e = standardised.e
    if direction == "both":
        return np.fmax(score(spec, standardised, "up"), score(spec, standardised, "down"))
    signed = e if direction == "up" else -e
    if spec.kind == "robust_z":
        result = robust_z(signed)
    elif spec.kind == "ewma":
        result = ewma(signed, spec.ewma_lambda)
    else:
        result = cusum(signed, spec.cusum_k)
    return np.where(np.isnan(e[:, -1]), np.nan, result)
