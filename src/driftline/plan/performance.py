"""Model performance (SPEC §6), with scikit-learn's definitions, from sums the warehouse returns.

- binary classification: a confusion matrix, log-loss and Brier sums, and for ``roc_auc`` the
  Mann–Whitney U statistic from the ranks of the positives' scores among the scored rows, ties
  averaged as ``roc_auc_score`` does: U = Σ rank(positive) − P(P + 1)/2, AUC = U / (P · N);
- regression: error sums, and the label variance for r2;
- multiclass: counts per class (actual, predicted, correct) for the macro averages.

Only rows with a label (and the prediction or score the metric reads) count; the others are
reported as ``unlabeled_rows``. A zero denominator gives None (insufficient_data), never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import ibis
import ibis.expr.types as ir
import numpy as np

from driftline import contributions, dialects, metrics, reasons, standard_errors
from driftline.plan.aggregates import Figures, count_where, ratio
from driftline.plan.check_kind import NOTHING_TO_MEASURE, CheckKind, Context, Value
from driftline.plan.frame import LABEL, PREDICTED, SCORE
from driftline.plan.groupings import GROUPING, SEGMENT, VALUE, by_segment
from driftline.plan.histograms import clean
from driftline.plan.labels import RAW_LABEL
from driftline.plan.window_query import ROWS_KEY, SegmentFigures, WindowQuery
from driftline.reasons import Reason
from driftline.spec.models import PerformanceCheck

LOG_LOSS_EPSILON = 1e-15  # scores are clipped to [eps, 1 - eps] before the logarithm
MAPE_EPSILON = float(np.finfo(np.float64).eps)  # as sklearn's mean_absolute_percentage_error


# -- what the warehouse computes -------------------------------------------------------------------


def add_confusion(add: Callable) -> None:
    """Register the binary confusion counts (shared with fairness, which counts them per group).

    A cell counts rows whose label and prediction are both known: ``y & p`` is null otherwise.
    """
    cells = {
        "tp": lambda y, p: y & p,
        "fp": lambda y, p: ~y & p,
        "fn": lambda y, p: y & ~p,
        "tn": lambda y, p: ~y & ~p,
    }
    for key, cell in cells.items():
        add(key, lambda t, cell=cell: count_where(cell(t[LABEL], t[PREDICTED])))
    add(ROWS_KEY, lambda t: t.count())
    add("labeled", lambda t: t[LABEL].count())
    add("positives", lambda t: count_where(t[LABEL]))
    add("predictions", lambda t: t[PREDICTED].count())
    add("predicted_positive", lambda t: count_where(t[PREDICTED]))


def _invalid_labels(t: ir.Table) -> ir.IntegerScalar:
    """Labels that are neither boolean nor 0/1: stored, but read as null (``frame._positive``)."""
    return count_where(clean(t[RAW_LABEL]).notnull() & t[LABEL].isnull()) if RAW_LABEL in t.columns else ibis.literal(0)


def _unusable(check: PerformanceCheck, f: Figures) -> Reason | None:
    """Why a binary metric is not measured on this window's values at all, if it is not: a wrong
    number from data the metric is not defined on would be worse than none."""
    if f.count("invalid_labels"):
        return Reason(reasons.BAD_LABELS, f"{f.count('invalid_labels')} labels are neither 0 nor 1 (nor boolean): fix the label column")
    if check.metric in ("log_loss", "brier") and f.count("scores_outside_0_1"):
        return Reason(reasons.BAD_SCORES, f"{f.count('scores_outside_0_1')} scores lie outside [0, 1]: {check.metric} needs probabilities")
    return None


def _add_binary_scores(add: Callable) -> None:
    def scored(t: ir.Table) -> ir.BooleanValue:
        return t[LABEL].notnull() & t[SCORE].notnull()

    def clipped(t: ir.Table) -> ir.FloatingValue:
        return ibis.least(ibis.greatest(t[SCORE], LOG_LOSS_EPSILON), 1 - LOG_LOSS_EPSILON)

    def log_loss(t: ir.Table) -> ir.FloatingValue:
        p = clipped(t)
        return ibis.ifelse(t[LABEL], -p.ln(), -(1 - p).ln())

    add("scored", lambda t: count_where(scored(t)))
    add("scores_outside_0_1", lambda t: count_where(scored(t) & ((t[SCORE] < 0) | (t[SCORE] > 1))))
    def squared_error(t: ir.Table) -> ir.FloatingValue:
        # ifelse, not a cast: PostgreSQL cannot cast a boolean to a double.
        return (t[SCORE] - ibis.ifelse(t[LABEL], 1.0, 0.0)) ** 2

    add("log_loss_sum", lambda t: log_loss(t).sum(where=scored(t)))
    add("brier_sum", lambda t: squared_error(t).sum(where=scored(t)))
    # the per-row losses' squares, for their mean's standard error
    add("log_loss_squares", lambda t: (log_loss(t) ** 2).sum(where=scored(t)))
    add("brier_squares", lambda t: (squared_error(t) ** 2).sum(where=scored(t)))


def _add_regression(add: Callable, add_sum: Callable) -> None:
    def known(t: ir.Table) -> ir.BooleanValue:
        return t[LABEL].notnull() & t[PREDICTED].notnull()

    def error(t: ir.Table) -> ir.FloatingValue:
        return t[PREDICTED] - t[LABEL]

    def percentage_error(t: ir.Table) -> ir.FloatingValue:
        return error(t).abs() / ibis.greatest(t[LABEL].abs(), MAPE_EPSILON)

    add_sum(ROWS_KEY, lambda t: t.count())
    add_sum("labeled", lambda t: t[LABEL].count())
    add_sum("evaluated", lambda t: count_where(known(t)))
    add_sum("error_sum", lambda t: error(t).sum(where=known(t)))
    add_sum("absolute_error_sum", lambda t: error(t).abs().sum(where=known(t)))
    add_sum("squared_error_sum", lambda t: (error(t) ** 2).sum(where=known(t)))
    add_sum("percentage_error_sum", lambda t: percentage_error(t).sum(where=known(t)))
    # the squares of the per-row values averaged by mse and mape, for their standard errors
    add_sum("fourth_power_error_sum", lambda t: (error(t) ** 4).sum(where=known(t)))
    add_sum("percentage_error_square_sum", lambda t: (percentage_error(t) ** 2).sum(where=known(t)))
    # The warehouse's own (numerically stable) variance: Σ(y - ȳ)² = n · var_pop(y); not a sum.
    add("label_variance", lambda t: t[LABEL].var(how="pop", where=known(t)))


def auc_branch(query: WindowQuery) -> ir.Table:
    """Per segment: positives P, negatives N and the sums the Mann–Whitney U is read from.

    A tied score's average rank is (first rank + last rank) / 2, and its last rank is
    cume_dist · n: both come from one sorted window per grouping (overall, each segment column),
    computed on the window's rows before they are expanded per grouping, so each sort reads
    every row once. Per segment: Σ first rank and Σ cume_dist over the positives; see
    :meth:`Binary.auc_u`.
    """
    rows = query.rows
    scored = rows.filter(rows[LABEL].notnull() & rows[SCORE].notnull())
    scored = scored.select(*query.segments, LABEL, SCORE)
    partitions = [None, *(scored[s] for s in query.segments)]
    ranked = scored.mutate(
        **{f"__first_rank{g}": ibis.rank().over(ibis.window(group_by=p, order_by=SCORE)) + 1 for g, p in enumerate(partitions)},
        **{f"__cume_dist{g}": dialects.cume_dist(scored[SCORE], p, query.dialect) for g, p in enumerate(partitions)},
    )
    t = by_segment(ranked, query.segments)
    first_rank = _for_grouping(t, "__first_rank", len(partitions)).cast("float64")
    cume_dist = _for_grouping(t, "__cume_dist", len(partitions))
    positive = t[LABEL]
    zero = ibis.literal(0.0, "float64")
    return t.group_by([GROUPING, SEGMENT]).aggregate(
        positives=positive.sum().cast("float64"),  # a boolean's sum: ibis casts it portably
        negatives=(~positive).sum().cast("float64"),
        first_rank_sum=ibis.ifelse(positive, first_rank, zero).sum(),
        cume_dist_sum=ibis.ifelse(positive, cume_dist, zero).sum(),
    )


def _for_grouping(t: ir.Table, prefix: str, groupings: int) -> ir.Column:
    """The column ``<prefix><g>`` of each row's grouping g."""
    if groupings == 1:
        return t[f"{prefix}0"]
    return ibis.cases(*[(t[GROUPING] == g, t[f"{prefix}{g}"]) for g in range(groupings)])


def classes_branch(query: WindowQuery) -> ir.Table:
    """Per segment and class: rows whose label is the class, predicted as it, and both."""
    t = query.expanded()
    known = t.filter(t[LABEL].notnull() & t[PREDICTED].notnull())
    keys = [GROUPING, SEGMENT]
    cells = known.group_by([*keys, LABEL, PREDICTED]).aggregate(n=known.count())
    zero = ibis.literal(0, "int64")
    as_actual = cells.select(*keys, **{VALUE: cells[LABEL]}, actual=cells.n, predicted=zero,
                             correct=ibis.ifelse(cells[LABEL] == cells[PREDICTED], cells.n, zero))
    as_predicted = cells.select(*keys, **{VALUE: cells[PREDICTED]}, actual=zero, predicted=cells.n, correct=zero)
    both = ibis.union(as_actual, as_predicted, distinct=False)
    return both.group_by([*keys, VALUE]).aggregate(
        actual=both.actual.sum(), predicted=both.predicted.sum(), correct=both.correct.sum()
    )


# -- finishing the formulas --------------------------------------------------------------------------


@dataclass(frozen=True)
class Binary:
    """A segment's binary-classification sums."""

    tp: int
    fp: int
    fn: int
    tn: int
    labeled: int
    positives: int
    predictions: int
    predicted_positive: int
    scored: int
    log_loss_sum: float | None
    brier_sum: float | None
    log_loss_squares: float | None
    brier_squares: float | None
    auc: Figures

    @classmethod
    def read(cls, figures: SegmentFigures) -> Binary:
        f = figures.main
        counts = {k: f.count(k) for k in ("tp", "fp", "fn", "tn", "labeled", "positives", "predictions", "predicted_positive", "scored")}
        sums = {k: f[k] for k in ("log_loss_sum", "brier_sum", "log_loss_squares", "brier_squares")}
        return cls(**counts, **sums, auc=figures.branch("auc"))

    @property
    def evaluated(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def auc_pairs(self) -> float | None:
        positives, negatives = self.auc["positives"], self.auc["negatives"]
        return None if positives is None or negatives is None else positives * negatives

    @property
    def auc_u(self) -> float | None:
        """U = Σ average rank of the positives − P(P + 1)/2; a tie group's average rank is
        (first rank + cume_dist · n) / 2, n = P + N the rows ranked together."""
        f = self.auc
        if f["positives"] is None or f["negatives"] is None or f["first_rank_sum"] is None:
            return None
        positives, n = f["positives"], f["positives"] + f["negatives"]
        rank_sum = (f["first_rank_sum"] + n * f["cume_dist_sum"]) / 2
        return rank_sum - positives * (positives + 1) / 2


# metric: (the rows it is measured on, its formula)
BINARY: dict[str, tuple[Callable[[Binary], int], Callable[[Binary], float | None]]] = {
    "accuracy": (lambda b: b.evaluated, lambda b: ratio(b.tp + b.tn, b.evaluated)),
    "precision": (lambda b: b.evaluated, lambda b: ratio(b.tp, b.tp + b.fp)),
    "recall": (lambda b: b.evaluated, lambda b: ratio(b.tp, b.tp + b.fn)),
    "f1": (lambda b: b.evaluated, lambda b: ratio(2 * b.tp, 2 * b.tp + b.fp + b.fn)),
    "fpr": (lambda b: b.evaluated, lambda b: ratio(b.fp, b.fp + b.tn)),
    "specificity": (lambda b: b.evaluated, lambda b: ratio(b.tn, b.fp + b.tn)),
    "roc_auc": (lambda b: b.scored, lambda b: ratio(b.auc_u, b.auc_pairs)),
    "log_loss": (lambda b: b.scored, lambda b: ratio(b.log_loss_sum, b.scored)),
    "brier": (lambda b: b.scored, lambda b: ratio(b.brier_sum, b.scored)),
    "positive_rate": (lambda b: b.predictions, lambda b: ratio(b.predicted_positive, b.predictions)),
    "label_rate": (lambda b: b.labeled, lambda b: ratio(b.positives, b.labeled)),
}


def _binomial(numerator: Callable[[Binary], int], denominator: Callable[[Binary], int]) -> Callable[[Binary], float | None]:
    """The binomial error of the rate numerator / denominator, over the denominator's rows."""
    return lambda b: standard_errors.binomial(ratio(numerator(b), denominator(b)), denominator(b))


def _mean_of_scores(total: Callable[[Binary], float | None], squares: Callable[[Binary], float | None]) -> Callable[[Binary], float | None]:
    return lambda b: standard_errors.mean_from_sums(total(b), squares(b), b.scored)


# metric: its standard error (SPEC §6); a metric missing here reports none
BINARY_ERRORS: dict[str, Callable[[Binary], float | None]] = {
    "accuracy": _binomial(lambda b: b.tp + b.tn, lambda b: b.evaluated),
    "precision": _binomial(lambda b: b.tp, lambda b: b.tp + b.fp),
    "recall": _binomial(lambda b: b.tp, lambda b: b.tp + b.fn),
    "f1": lambda b: standard_errors.f1(b.tp, b.fp, b.fn),
    "fpr": _binomial(lambda b: b.fp, lambda b: b.fp + b.tn),
    "specificity": _binomial(lambda b: b.tn, lambda b: b.fp + b.tn),
    "roc_auc": lambda b: standard_errors.hanley_mcneil(ratio(b.auc_u, b.auc_pairs), b.auc["positives"], b.auc["negatives"]),
    "log_loss": _mean_of_scores(lambda b: b.log_loss_sum, lambda b: b.log_loss_squares),
    "brier": _mean_of_scores(lambda b: b.brier_sum, lambda b: b.brier_squares),
    "positive_rate": _binomial(lambda b: b.predicted_positive, lambda b: b.predictions),
    "label_rate": _binomial(lambda b: b.positives, lambda b: b.labeled),
}


def binary_weight(metric: str, b: Binary) -> float | None:
    """The metric's denominator on this segment: its weight when segments add up."""
    if metric in contributions.CONFUSION_DENOMINATORS:
        return contributions.CONFUSION_DENOMINATORS[metric](b.tp, b.fp, b.fn, b.tn)
    return {"roc_auc": b.auc_pairs, "log_loss": b.scored, "brier": b.scored,
            "positive_rate": b.predictions, "label_rate": b.labeled}.get(metric)  # fmt: skip


def _sqrt(value: float | None) -> float | None:
    return None if value is None else math.sqrt(value)


def _r2(f: Figures) -> float | None:
    n, variance = f.count("evaluated"), f["label_variance"]
    explained = ratio(f["squared_error_sum"], None if variance is None else n * variance)
    return None if explained is None else 1.0 - explained


REGRESSION: dict[str, Callable[[Figures], float | None]] = {
    "mae": lambda f: ratio(f["absolute_error_sum"], f.count("evaluated")),
    "rmse": lambda f: _sqrt(ratio(f["squared_error_sum"], f.count("evaluated"))),
    "mape": lambda f: ratio(f["percentage_error_sum"], f.count("evaluated")),
    "r2": _r2,
    "mean_error": lambda f: ratio(f["error_sum"], f.count("evaluated")),
}


def _regression_mean(total: str, squares: str = "squared_error_sum") -> Callable[[Figures], float | None]:
    """The error of a mean of per-row values from their sum and the sum of their squares; the
    squares of e and of |e| are both Σe² (``squared_error_sum``), so mae and mean_error share it."""
    return lambda f: standard_errors.mean_from_sums(f[total], f[squares], f.count("evaluated"))


_MSE_ERROR = _regression_mean("squared_error_sum", "fourth_power_error_sum")


def _rmse_error(f: Figures) -> float | None:
    """The delta method on rmse = sqrt(mse): the error of the mean of e² over 2 · rmse."""
    rmse, mse_error = REGRESSION["rmse"](f), _MSE_ERROR(f)
    return None if rmse is None or mse_error is None or rmse <= 0 else mse_error / (2.0 * rmse)


REGRESSION_ERRORS: dict[str, Callable[[Figures], float | None]] = {
    "mae": _regression_mean("absolute_error_sum"),
    "mean_error": _regression_mean("error_sum"),
    "mape": _regression_mean("percentage_error_sum", "percentage_error_square_sum"),
    "rmse": _rmse_error,
}


def _macro(per_class: list[float | None]) -> float | None:
    """The unweighted mean over classes; None when a class's own ratio is undefined."""
    if not per_class or any(v is None for v in per_class):
        return None
    return float(np.mean(per_class))


MULTICLASS: dict[str, Callable[[list[Figures]], float | None]] = {
    "accuracy": lambda k: ratio(sum(c.count("correct") for c in k), sum(c.count("actual") for c in k)),
    "macro_precision": lambda k: _macro([ratio(c.count("correct"), c.count("predicted")) for c in k]),
    "macro_recall": lambda k: _macro([ratio(c.count("correct"), c.count("actual")) for c in k]),
    "macro_f1": lambda k: _macro([ratio(2 * c.count("correct"), c.count("actual") + c.count("predicted")) for c in k]),
}


def _macro_error(per_class: list[float | None]) -> float | None:
    """The error of an unweighted mean of K per-class values taken as independent: sqrt(Σ se²) / K."""
    if not per_class or any(v is None for v in per_class):
        return None
    return float(np.sqrt(np.sum(np.square(per_class)))) / len(per_class)


def _class_f1(c: Figures) -> float | None:
    correct = c.count("correct")
    return standard_errors.f1(correct, c.count("predicted") - correct, c.count("actual") - correct)


MULTICLASS_ERRORS: dict[str, Callable[[list[Figures]], float | None]] = {
    "accuracy": lambda k: standard_errors.binomial(MULTICLASS["accuracy"](k), sum(c.count("actual") for c in k)),
    "macro_precision": lambda k: _macro_error([standard_errors.binomial(ratio(c.count("correct"), c.count("predicted")), c.count("predicted")) for c in k]),
    "macro_recall": lambda k: _macro_error([standard_errors.binomial(ratio(c.count("correct"), c.count("actual")), c.count("actual")) for c in k]),
    "macro_f1": lambda k: _macro_error([_class_f1(c) for c in k]),
}


# -- the check kind ----------------------------------------------------------------------------------


class Performance(CheckKind):
    check_type = "performance"

    def needs_labels(self, check: PerformanceCheck) -> bool:
        return metrics.needs_labels(self.check_type, check.metric)

    def has_std_error(self, check: PerformanceCheck, macros) -> bool:
        return check.metric in BINARY_ERRORS or check.metric in REGRESSION_ERRORS or check.metric in MULTICLASS_ERRORS

    def register(self, check: PerformanceCheck, query: WindowQuery, context: Context) -> None:
        model = context.monitor.model
        if model.task == "regression":
            _add_regression(query.add, query.add_sum)
        elif model.task == "multiclass_classification":
            query.add_sum(ROWS_KEY, lambda t: t.count())
            query.add_sum("labeled", lambda t: t[LABEL].count())
            query.add_branch("classes", classes_branch)
        else:
            add_confusion(query.add_sum)
            query.add_sum("invalid_labels", _invalid_labels)
            if check.metric in ("log_loss", "brier"):
                _add_binary_scores(query.add_sum)
            if check.metric == "roc_auc":
                query.add_sum("scored", lambda t: count_where(t[LABEL].notnull() & t[SCORE].notnull()))
                query.add_branch("auc", auc_branch)

    def measure(self, check: PerformanceCheck, column: str | None, figures: SegmentFigures, context: Context) -> Value:
        f = figures.main
        details = {"unlabeled_rows": f.count(ROWS_KEY) - f.count("labeled")}
        if self.needs_labels(check) and not context.labels_mature:
            return context.not_mature(**details)
        task = context.monitor.model.task
        undefined = Reason(reasons.ZERO_DENOMINATOR, f"{check.metric} is undefined here (a zero denominator)")
        empty = Reason(reasons.NO_LABELS, "no labeled rows") if f.count(ROWS_KEY) else NOTHING_TO_MEASURE
        if task == "regression":
            error = REGRESSION_ERRORS.get(check.metric, lambda f: None)(f)
            value = Value.of(REGRESSION[check.metric](f), f.count("evaluated"), undefined, empty, **details).with_error(error)
            return value.weighted(f.count("evaluated") if check.metric in ("mae", "mape", "mean_error") else None)
        if task == "multiclass_classification":
            classes = list(figures.values("classes").values())
            n = sum(c.count("actual") for c in classes)
            value = Value.of(MULTICLASS[check.metric](classes), n, undefined, empty, classes=len(classes), **details)
            value = value.with_error(MULTICLASS_ERRORS[check.metric](classes))
            return value.weighted(n if check.metric == "accuracy" else None)
        binary = Binary.read(figures)
        sample, formula = BINARY[check.metric]
        unusable = _unusable(check, f) if self.needs_labels(check) else None
        if unusable is not None:
            return Value.missing(unusable, sample(binary), **details)
        value = Value.of(formula(binary), sample(binary), undefined, empty, **details)
        return value.with_error(BINARY_ERRORS[check.metric](binary)).weighted(binary_weight(check.metric, binary))

    def validate(self, check: PerformanceCheck, index: int, validator) -> None:
        model = validator.spec.model
        where = ("checks", index, "performance", "metric")
        if model is None:
            validator.error("a performance check needs a `model` block (task, score or prediction, label)", ("checks", index, "performance"))
            return
        allowed = metrics.names(self.check_type, model.task)
        if check.metric not in allowed:
            validator.error(f"metric {check.metric} is not a {model.task} metric; expected one of: {', '.join(allowed)}", where)
        elif metrics.facts(self.check_type, check.metric).reads_score and model.score is None:
            validator.error(f"metric {check.metric} reads the model's score; set model.score", where)
        elif self.needs_labels(check):
            validator.require_labels(where, f"metric {check.metric}")
