"""The facts about every built-in metric, in one registry: its name, the check type it belongs
to, the model tasks it is defined for, which way is worse, and whether it needs labels or scores.

The monitor schema (``spec/models.py``) takes its lists of metric names from here, the judge its
directions, and the performance and fairness checks their label and score needs; the formulas
stay with the checks that compute them.

Which way is worse decides what a plain-number threshold means (SPEC §3): ``higher`` (drift
distances, error rates, latency) breaches **above** the number, ``lower`` (accuracy, AUC, parity
ratios, row_count) **below** it. A metric where neither is worse (a mean, a rate of positive
predictions) breaches above it, as written thresholds usually mean an upper limit. A custom
``metric:`` check is never looked up here: its name is the user's, whatever it spells.

>>> names("performance", "multiclass_classification")
('accuracy', 'macro_precision', 'macro_recall', 'macro_f1')
>>> breach_side("performance", "roc_auc"), breach_side("drift", "psi"), breach_side("metric", "recall")
('below', 'above', 'above')
"""

from __future__ import annotations

from dataclasses import dataclass

HIGHER, LOWER = "higher", "lower"  # which way a metric gets worse

BINARY = "binary_classification"
MULTICLASS = "multiclass_classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class Metric:
    name: str
    check_type: str  # drift | performance | estimated_performance | fairness | quality | latency
    worse: str | None  # HIGHER, LOWER, or None when neither way is worse
    tasks: tuple[str, ...] = ()  # the model tasks it is defined for (performance, fairness)
    needs_labels: bool = False  # waits for ground truth (and its delay)
    reads_score: bool = False  # reads the model's score, not only its predicted label


def _drift(name: str) -> Metric:
    return Metric(name, "drift", HIGHER)


def _binary(name: str, worse: str | None, *, labels: bool = True, score: bool = False) -> Metric:
    return Metric(name, "performance", worse, (BINARY,), labels, score)


def _fairness(name: str, worse: str, *, labels: bool) -> Metric:
    return Metric(name, "fairness", worse, (BINARY,), labels)


def _quality(name: str, worse: str | None) -> Metric:
    return Metric(name, "quality", worse)


# In the order the schema lists them (and its error messages name them).
REGISTRY: tuple[Metric, ...] = (
    *(_drift(m) for m in ("psi", "kl", "js", "hellinger", "tvd", "linf", "chi2", "ks", "wasserstein")),
    Metric("accuracy", "performance", LOWER, (BINARY, MULTICLASS), needs_labels=True),
    _binary("precision", LOWER),
    _binary("recall", LOWER),
    _binary("f1", LOWER),
    _binary("fpr", HIGHER),
    _binary("specificity", LOWER),
    _binary("roc_auc", LOWER, score=True),
    _binary("log_loss", HIGHER, score=True),
    _binary("brier", HIGHER, score=True),
    _binary("positive_rate", None, labels=False),  # reads predictions only
    _binary("label_rate", None),
    *(Metric(m, "performance", w, (REGRESSION,), needs_labels=True)
      for m, w in (("mae", HIGHER), ("rmse", HIGHER), ("mape", HIGHER), ("r2", LOWER), ("mean_error", None))),
    *(Metric(m, "performance", LOWER, (MULTICLASS,), needs_labels=True)
      for m in ("macro_precision", "macro_recall", "macro_f1")),
    # Estimated from calibrated scores (CBPE): no labels in the window, only in the reference.
    *(Metric(m, "estimated_performance", LOWER, (BINARY,), reads_score=True)
      for m in ("precision", "recall", "f1", "accuracy", "specificity", "roc_auc")),
    _fairness("demographic_parity_difference", HIGHER, labels=False),
    _fairness("demographic_parity_ratio", LOWER, labels=False),
    _fairness("equal_opportunity_difference", HIGHER, labels=True),
    _fairness("equalized_odds_difference", HIGHER, labels=True),
    _fairness("predictive_parity_difference", HIGHER, labels=True),
    _fairness("disparate_impact", LOWER, labels=False),
    _quality("row_count", LOWER),
    _quality("null_rate", HIGHER),
    *(_quality(m, None) for m in ("distinct_count", "mean", "stddev", "min", "max")),
    _quality("out_of_range_rate", HIGHER),
    _quality("new_category_rate", HIGHER),
    _quality("freshness_hours", HIGHER),
    _quality("schema_change", HIGHER),
    Metric("latency", "latency", HIGHER),
)  # fmt: skip

_BY_KEY = {(m.check_type, m.name): m for m in REGISTRY}


def names(check_type: str, task: str | None = None) -> tuple[str, ...]:
    """The metric names of ``check_type`` (defined for ``task`` when given), in registry order."""
    return tuple(m.name for m in REGISTRY if m.check_type == check_type and (task is None or task in m.tasks))


def facts(check_type: str, name: str) -> Metric | None:
    """The registry's entry for metric ``name`` of ``check_type``; None for custom metrics."""
    return _BY_KEY.get((check_type, name))


def needs_labels(check_type: str, name: str) -> bool:
    found = facts(check_type, name)
    return found is not None and found.needs_labels


def breach_side(check_type: str, name: str) -> str:
    """Where a plain-number threshold breaches: "below" when lower is worse, else "above"."""
    found = facts(check_type, name)
    return "below" if found is not None and found.worse == LOWER else "above"
