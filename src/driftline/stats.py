"""The few finishing formulas that run in Python, on aggregates the warehouse returned.

Inputs are small: one histogram (bins of counts) or a handful of numbers per column and segment.
The definitions are those of SPEC §6; tests check each one against scipy or plain numpy.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_EPSILON = 1e-4


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total


def psi(reference: np.ndarray, current: np.ndarray, eps: float = DEFAULT_EPSILON) -> float:
    """Population stability index: Σ (q'−p') ln(q'/p') with shares floored at ``eps``."""
    p = np.maximum(_shares(reference), eps)
    q = np.maximum(_shares(current), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def kl(reference: np.ndarray, current: np.ndarray, eps: float = DEFAULT_EPSILON) -> float:
    """Kullback–Leibler divergence of current from reference, in nats: Σ q' ln(q'/p')."""
    p = np.maximum(_shares(reference), eps)
    q = np.maximum(_shares(current), eps)
    return float(np.sum(q * np.log(q / p)))


def js(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen–Shannon distance, base 2, in [0, 1] (0·log 0 = 0, no epsilon)."""
    p, q = _shares(reference), _shares(current)
    m = (p + q) / 2

    def half_kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return math.sqrt(max(0.0, 0.5 * half_kl(p) + 0.5 * half_kl(q)))


def hellinger(reference: np.ndarray, current: np.ndarray) -> float:
    """Hellinger distance: sqrt(max(0, 1 − Σ sqrt(p q)))."""
    p, q = _shares(reference), _shares(current)
    return math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(p * q)))))


def tvd(reference: np.ndarray, current: np.ndarray) -> float:
    """Total variation distance: ½ Σ |p − q|."""
    return float(0.5 * np.sum(np.abs(_shares(reference) - _shares(current))))


def linf(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest absolute difference of shares in any bin."""
    return float(np.max(np.abs(_shares(reference) - _shares(current))))


def chi2(
    reference: np.ndarray, current: np.ndarray, eps: float = DEFAULT_EPSILON
) -> tuple[float, float]:
    """Cohen's w = sqrt(X² / N_cur) and the chi-square p-value of X² with bins − 1 dof."""
    p = np.maximum(_shares(reference), eps)
    n_cur = float(current.sum())
    expected = n_cur * p
    statistic = float(np.sum((current - expected) ** 2 / expected))
    dof = max(len(current) - 1, 1)
    from scipy import stats as scipy_stats  # imported when needed: it costs a second at start-up

    return math.sqrt(statistic / n_cur), float(scipy_stats.chi2.sf(statistic, dof))


def ks_pvalue(d: float, n_reference: int, n_current: int) -> float | None:
    """Two-sided asymptotic p-value of a KS statistic, as ``ks_2samp(..., method="asymp")``.

    None where that p-value is undefined: an empty side, or one value on each side, whose
    effective size m·n/(m+n) = 0.5 rounds (half to even, as scipy does) to 0. scipy returns NaN
    there, with a divide-by-zero RuntimeWarning on stderr; we do not ask it.
    """
    m, n = sorted([float(n_reference), float(n_current)], reverse=True)
    if n < 1:
        return None
    effective_n = np.round(m * n / (m + n))
    if effective_n < 1:
        return None
    from scipy import stats as scipy_stats  # imported when needed: it costs a second at start-up

    return float(np.clip(scipy_stats.kstwo.sf(d, effective_n), 0.0, 1.0))


BINNED_METHODS = {
    "psi": psi,
    "kl": kl,
    "js": js,
    "hellinger": hellinger,
    "tvd": tvd,
    "linf": linf,
}
