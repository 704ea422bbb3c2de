"""The finishing formulas of ``driftline.stats`` against independent numpy/scipy versions (SPEC §6).

Histograms are random counts, some with empty bins on either side; shares are floored at
``eps`` where the SPEC says so (psi, kl, chi2) and used as they are elsewhere.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

from driftline import stats

EPS = 1e-4


def histograms(seed: int, empty_bins: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bins = int(rng.integers(2, 25))
    reference = rng.integers(0, 500, bins).astype(float)
    current = rng.integers(0, 500, bins).astype(float)
    if empty_bins:
        reference[rng.choice(bins, size=max(1, bins // 4), replace=False)] = 0
        current[rng.choice(bins, size=max(1, bins // 4), replace=False)] = 0
    else:
        reference += 50  # every reference share well above eps
    reference[0] += 1  # never an all-empty histogram
    current[-1] += 1
    return reference, current


CASES = [(seed, empty) for seed in range(12) for empty in (False, True)]


def shares(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum()


@pytest.mark.parametrize(("seed", "empty"), CASES)
def test_psi(seed, empty):
    reference, current = histograms(seed, empty)
    p, q = np.maximum(shares(reference), EPS), np.maximum(shares(current), EPS)
    expected = sum((qi - pi) * np.log(qi / pi) for pi, qi in zip(p, q))
    assert stats.psi(reference, current, EPS) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("seed", "empty"), CASES)
def test_kl_is_current_given_reference_in_nats(seed, empty):
    reference, current = histograms(seed, empty)
    p, q = np.maximum(shares(reference), EPS), np.maximum(shares(current), EPS)
    expected = sum(qi * np.log(qi / pi) for pi, qi in zip(p, q))  # floored, not renormalised
    assert stats.kl(reference, current, EPS) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    if not empty:  # no share below eps: the textbook KL divergence
        assert stats.kl(reference, current, EPS) == pytest.approx(scipy_stats.entropy(q, p), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("seed", "empty"), CASES)
def test_js_is_scipys_base_2_distance(seed, empty):
    reference, current = histograms(seed, empty)
    expected = jensenshannon(reference, current, base=2)
    assert stats.js(reference, current) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert 0.0 <= stats.js(reference, current) <= 1.0


@pytest.mark.parametrize(("seed", "empty"), CASES)
def test_hellinger(seed, empty):
    reference, current = histograms(seed, empty)
    p, q = shares(reference), shares(current)
    expected = np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2))  # the textbook form
    assert stats.hellinger(reference, current) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("seed", "empty"), CASES)
def test_tvd_and_linf(seed, empty):
    reference, current = histograms(seed, empty)
    difference = np.abs(shares(reference) - shares(current))
    assert stats.tvd(reference, current) == pytest.approx(difference.sum() / 2, rel=1e-9, abs=1e-12)
    assert stats.linf(reference, current) == pytest.approx(difference.max(), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_chi2_is_cohens_w_of_scipys_chisquare(seed):
    reference, current = histograms(seed, empty_bins=False)
    n_current = current.sum()
    expected_counts = n_current * shares(reference)  # no share below eps here: p' = p
    result = scipy_stats.chisquare(current, expected_counts)
    w, p_value = stats.chi2(reference, current, EPS)
    assert w == pytest.approx(np.sqrt(result.statistic / n_current), rel=1e-9)
    assert p_value == pytest.approx(result.pvalue, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_chi2_floors_empty_reference_bins_at_eps(seed):
    reference, current = histograms(seed, empty_bins=True)
    n_current = current.sum()
    expected_counts = n_current * np.maximum(shares(reference), EPS)
    statistic = float(np.sum((current - expected_counts) ** 2 / expected_counts))
    w, p_value = stats.chi2(reference, current, EPS)
    assert w == pytest.approx(np.sqrt(statistic / n_current), rel=1e-9)
    assert p_value == pytest.approx(scipy_stats.chi2.sf(statistic, len(current) - 1), rel=1e-6, abs=1e-300)


@pytest.mark.parametrize("seed", range(10))
def test_ks_pvalue_is_scipys_asymptotic_one(seed):
    rng = np.random.default_rng(seed)
    reference = rng.normal(size=int(rng.integers(5, 3000)))
    current = rng.normal(loc=rng.uniform(0, 0.3), size=int(rng.integers(5, 3000)))
    expected = scipy_stats.ks_2samp(reference, current, method="asymp")
    assert stats.ks_pvalue(expected.statistic, len(reference), len(current)) == pytest.approx(
        expected.pvalue, rel=1e-6, abs=1e-12
    )


@pytest.mark.parametrize(("d", "n_reference", "n_current"), [(1.0, 1, 1), (0.0, 1, 1), (1.0, 0, 5), (0.5, 3, 0)])
def test_ks_pvalue_is_none_where_undefined_without_a_warning(d, n_reference, n_current):
    """One value a side: scipy's effective size 0.5 rounds to 0 and it returns NaN with a
    RuntimeWarning on stderr; an empty side has no test at all. Both are None, silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.ks_pvalue(d, n_reference, n_current) is None
    if n_reference and n_current:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            assert np.isnan(scipy_stats.ks_2samp([0.0], [d], method="asymp").pvalue)


@pytest.mark.parametrize(("n_reference", "n_current"), [(1, 2), (2, 1), (1, 500), (2, 2)])
def test_ks_pvalue_of_the_smallest_defined_sizes(n_reference, n_current):
    rng = np.random.default_rng(n_reference * 1000 + n_current)
    reference, current = rng.normal(size=n_reference), rng.normal(size=n_current)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = scipy_stats.ks_2samp(reference, current, method="asymp")
        got = stats.ks_pvalue(expected.statistic, n_reference, n_current)
    assert got == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


def test_identical_histograms_have_no_drift():
    counts = np.array([5.0, 0.0, 7.0, 3.0])
    for method in ("psi", "kl"):
        assert stats.BINNED_METHODS[method](counts, counts * 3, EPS) == pytest.approx(0.0, abs=1e-12)
    for method in ("js", "hellinger", "tvd", "linf"):
        assert stats.BINNED_METHODS[method](counts, counts * 3) == pytest.approx(0.0, abs=1e-7)


def test_epsilon_changes_the_floor():
    reference, current = np.array([10.0, 0.0]), np.array([5.0, 5.0])
    for eps in (1e-4, 1e-2):
        p, q = np.maximum([1.0, 0.0], eps), np.array([0.5, 0.5])
        assert stats.psi(reference, current, eps) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
