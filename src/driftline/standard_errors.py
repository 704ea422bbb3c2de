"""Closed-form standard errors of the values checks report (SPEC §6, "Standard errors").

Each is the sampling error of a metric measured on a window's n rows, from sums the window's
query already returns; none needs a query of its own. None whenever the formula is undefined
(no rows, or a zero denominator), so a value without an error is never judged as exact.

- a rate p = k / n (accuracy, precision, recall, specificity, ...): binomial sqrt(p(1 − p) / n),
  n the rate's own denominator (precision: the predicted positives; recall: the actual ones);
- a mean of per-row values (mae, mape, log_loss, a custom ``avg(x)``): s / sqrt(n), s the
  sample standard deviation; rmse = sqrt(mean of e²) by the delta method, that mean's error
  over 2 · rmse;
- ROC AUC: Hanley & McNeil (1982), from the AUC and the counts of positives P and negatives N;
- F1 = 2J / (1 + J), J = TP / (TP + FP + FN): the delta method on J's binomial error, given
  the TP + FP + FN rows where the label or the prediction is positive;
- a difference of independent values: sqrt(se₁² + se₂²); a ratio a / b: the delta method,
  (a / b) · sqrt((se_a / a)² + (se_b / b)²).

>>> round(binomial(0.5, 100), 6), round(mean_error(2.0, 16), 6)
(0.05, 0.5)
>>> round(difference(0.03, 0.04), 6), binomial(0.5, 0)
(0.05, None)
"""

from __future__ import annotations

import math


def binomial(p: float | None, n: int | float | None) -> float | None:
    """sqrt(p(1 − p) / n): the error of a proportion p of n independent rows."""
    if p is None or not n or n <= 0:
        return None
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


def mean_error(stddev: float | None, n: int | float | None) -> float | None:
    """s / sqrt(n): the error of a mean of n values whose sample standard deviation is s."""
    if stddev is None or not n or n <= 0 or math.isnan(stddev):
        return None
    return stddev / math.sqrt(n)


def mean_from_sums(total: float | None, squares: float | None, n: int | float | None) -> float | None:
    """The error of the mean of n values from their sum and sum of squares (sample variance,
    n − 1 in the denominator); None with fewer than two values."""
    if total is None or squares is None or not n or n < 2:
        return None
    variance = max(squares - total * total / n, 0.0) / (n - 1)
    return mean_error(math.sqrt(variance), n)


def hanley_mcneil(auc: float | None, positives: float | None, negatives: float | None) -> float | None:
    """Hanley & McNeil's error of an AUC over P positives and N negatives:
    sqrt((A(1 − A) + (P − 1)(Q₁ − A²) + (N − 1)(Q₂ − A²)) / (P · N)),
    Q₁ = A / (2 − A), Q₂ = 2A² / (1 + A)."""
    if auc is None or not positives or not negatives:
        return None
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    variance = (auc * (1.0 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


def f1(tp: int, fp: int, fn: int) -> float | None:
    """F1 = 2J / (1 + J) with J = TP / (TP + FP + FN); by the delta method its error is
    2 / (1 + J)² times J's binomial error over the TP + FP + FN rows."""
    m = tp + fp + fn
    if m <= 0:
        return None
    j = tp / m
    return 2.0 / (1.0 + j) ** 2 * binomial(j, m)


def difference(first: float | None, second: float | None) -> float | None:
    """The error of a difference (or sum) of two independent values."""
    if first is None or second is None:
        return None
    return math.sqrt(first * first + second * second)


def ratio(numerator: float | None, numerator_error: float | None, denominator: float | None, denominator_error: float | None) -> float | None:
    """The delta method's error of numerator / denominator, the two independent."""
    if None in (numerator, numerator_error, denominator, denominator_error) or not numerator or not denominator:
        return None
    value = numerator / denominator
    return abs(value) * math.sqrt((numerator_error / numerator) ** 2 + (denominator_error / denominator) ** 2)
