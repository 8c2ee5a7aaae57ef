"""The two drift scores, numpy and the standard library only (the device has no scipy).

**PSI** (population stability index) of a window's histogram against the baseline's, over the
same bins::

    p_i = (c_i + 0.5) / (N + 0.5 k)        q_i = (b_i + 0.5) / (B + 0.5 k)
    PSI = sum_i (p_i - q_i) * ln(p_i / q_i)

``c`` are the window's counts (``N`` in all), ``b`` the baseline's (``B``), ``k`` the bins. Half a
count added to every bin (:data:`SMOOTHING`) keeps an empty bin finite without letting one
dominate the sum, as a fixed floor like 1e-4 would (one empty bin of a decile histogram would then
score 0.69 by itself). Rules of thumb: under 0.1 stable, 0.1-0.25 a shift worth a look, over
0.25 a shift that matters: the default warn and alert thresholds.

**Chi-square** on the class mix: ``X2 = sum_j (O_j - E_j)^2 / E_j`` with ``E_j = N q_j`` (``q``
smoothed as above, so no expected count is zero) on ``k - 1`` degrees of freedom. Its p-value
uses the Wilson-Hilferty approximation, ``(X2/k)^(1/3)`` being nearly normal with mean
``1 - 2/(9k)`` and variance ``2/(9k)``: within 0.005 of the exact tail for ``k >= 3`` at the
p-values that matter here (checked against scipy in the tests when scipy is there).
"""

from __future__ import annotations

import math

import numpy as np

SMOOTHING = 0.5
"""Counts added to every bin on both sides before proportions are taken."""


def proportions(counts: np.ndarray) -> np.ndarray:
    """Smoothed proportions ``(c + 0.5) / (N + 0.5 k)`` of a histogram's counts."""
    c = np.asarray(counts, dtype=np.float64)
    out: np.ndarray = (c + SMOOTHING) / (c.sum() + SMOOTHING * c.size)
    return out


def psi(baseline_counts: np.ndarray, window_counts: np.ndarray) -> float:
    """Population stability index of ``window_counts`` against ``baseline_counts`` (same bins)."""
    if np.shape(baseline_counts) != np.shape(window_counts):
        raise ValueError(f"histograms differ in bins: {np.shape(baseline_counts)} vs {np.shape(window_counts)}")
    q, p = proportions(baseline_counts), proportions(window_counts)
    return float(np.sum((p - q) * np.log(p / q)))


def chi_square(baseline_counts: np.ndarray, window_counts: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic of the window's counts against the baseline's (smoothed) mix, and its dof."""
    observed = np.asarray(window_counts, dtype=np.float64)
    expected = observed.sum() * proportions(baseline_counts)
    return float(np.sum((observed - expected) ** 2 / expected)), max(1, observed.size - 1)


def chi_square_p(statistic: float, dof: int) -> float:
    """Upper-tail p-value of a chi-square statistic (Wilson-Hilferty approximation)."""
    if statistic <= 0.0:
        return 1.0
    var = 2.0 / (9.0 * dof)
    z = ((statistic / dof) ** (1.0 / 3.0) - (1.0 - var)) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2.0))
