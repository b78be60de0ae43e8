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
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter
from scipy.stats import median_abs_deviation

Direction = Literal["up", "down", "both"]
DETECTORS = ("robust_z", "ewma", "cusum")


@dataclass(frozen=True)
class Standardised:
    """The series in robust units, and the baseline that made them (for alert details)."""

    e: NDArray[np.float64]
    median: float
    scale: float


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
    """Standardise every point against the baseline (all points but the last)."""
    baseline = values[:-1]
    baseline = baseline[~np.isnan(baseline)]
    if baseline.size == 0:
        return Standardised(np.full(values.shape, np.nan), math.nan, math.nan)
    median = float(np.median(baseline))
    mad = float(median_abs_deviation(baseline, scale="normal"))
    scale = np.maximum(mad, floors)
    e = (values - median) / scale
    return Standardised(e, median, float(max(mad, floors[-1])))


def robust_z(e: NDArray[np.float64]) -> float:
    return float(e[-1])


def ewma(e: NDArray[np.float64], lam: float) -> float:
    """EWMA of e (missing points count as 0, i.e. 'as usual'), in units of its own std."""
    filled = np.nan_to_num(e, nan=0.0)
    smoothed = lfilter([lam], [1.0, -(1.0 - lam)], filled)
    return float(smoothed[-1] / math.sqrt(lam / (2.0 - lam)))


def cusum(e: NDArray[np.float64], k: float) -> float:
    total = 0.0
    for value in e:
        if not math.isnan(value):
            total = max(0.0, total + float(value) - k)
    return total


def score(spec: DetectorSpec, standardised: Standardised, direction: Direction) -> float:
    """The detector's score for the newest point; NaN when the newest point has no value."""
    e = standardised.e
    if e.size == 0 or math.isnan(e[-1]):
        return math.nan
    if direction == "both":
        return max(score(spec, standardised, "up"), score(spec, standardised, "down"))
    signed = e if direction == "up" else -e
    if spec.kind == "robust_z":
        return robust_z(signed)
    if spec.kind == "ewma":
        return ewma(signed, spec.ewma_lambda)
    return cusum(signed, spec.cusum_k)
