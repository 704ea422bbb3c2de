"""Estimated performance of a binary classifier before its labels arrive (CBPE, SPEC §6).

The model's scores are calibrated on the labeled reference; in a window without labels, the
calibrated probability p of each row is the chance its label is positive, so the confusion
matrix the labels would give is expected to be

    TP = Σ p·ŷ    FP = Σ (1 − p)·ŷ    FN = Σ p·(1 − ŷ)    TN = Σ (1 − p)·(1 − ŷ)

(ŷ the predicted class), and the metrics follow from it as from a real one. ROC AUC is the
trapezoidal area under the ROC curve whose positives and negatives at each score are the
expected weights Σp and Σ(1 − p) of the rows with that score.

1. Once per reference profile, the warehouse counts the labeled reference's rows and positives
   per score bin — its distinct scores when there are at most :data:`MAX_BINS`, else
   :data:`MAX_BINS` bins of equal size by rank (``percent_rank``, so tied scores share a bin)
   — and Python fits an isotonic regression (pool-adjacent-violators) on those few aggregates:
   each bin a point (mean score, positive rate) weighted by its rows. The fitted points are kept
   in the profile as rows [score, probability, rows, positives].
2. Per window, p is the fitted curve read at the row's score with linear interpolation between
   points and the end values beyond them (scikit-learn's ``IsotonicRegression(out_of_bounds=
   "clip")``), written in SQL as a binary search over the curve's knots (log2(knots) comparisons
   a row, the knots in arrays) and the line of the segment found; the expected matrix comes from
   two sums of the
   window's one checks query (Σp and Σp·ŷ, beside the counts of rows and of ŷ), and the AUC
   from one more branch of it.

The assumption (SPEC §6): what the model's score means — the chance of a positive at a given
score — has not changed since the reference. A drop caused by inputs moving to where the model
is less sure (covariate shift) is estimated; a drop because the same inputs now convert
differently (concept drift) is not seen until the labels arrive.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence

import ibis
import ibis.expr.types as ir
import pandas as pd

from driftline import dialects, metrics, reasons, standard_errors
from driftline.plan.aggregates import Figures, count_where, ratio
from driftline.plan.check_kind import CheckKind, Context, Value
from driftline.plan.frame import LABEL, PREDICTED, SCORE, window_rows
from driftline.plan.groupings import GROUPING, SEGMENT, by_segment
from driftline.plan.labels import labels_mature
from driftline.plan.profile import ReferenceProfile
from driftline.plan.window_query import SegmentFigures, WindowQuery
from driftline.reasons import Reason
from driftline.spec.models import EstimatedPerformanceCheck, Monitor
from driftline.windows import Window

MAX_BINS = 1000  # the distinct reference scores calibrated on, at most; beyond, bins of equal rank
PROFILE_KEY = "calibration"
AUC_BRANCH = "estimated_auc"
PROBABILITY = "__calibrated"  # the row's calibrated probability p, a column of the window's rows
_BIN, _ROWS, _POSITIVES = "__bin", "rows", "positives"


# -- the calibration: learned once per reference profile ------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """The isotonic curve: ascending scores and the probability of a positive at each."""

    scores: tuple[float, ...]
    probabilities: tuple[float, ...]
    rows: tuple[int, ...]  # the reference's labeled rows behind each point
    positives: tuple[int, ...]

    def to_rows(self) -> list[list[float]]:
        return [[x, y, n, k] for x, y, n, k in zip(self.scores, self.probabilities, self.rows, self.positives)]

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[float]]) -> Calibration:
        columns = list(zip(*rows)) or [(), (), (), ()]
        return cls(tuple(columns[0]), tuple(columns[1]), tuple(int(n) for n in columns[2]), tuple(int(k) for k in columns[3]))


# What ``driftline compile`` shows in place of a calibration a run has not learned yet.
PLACEHOLDER = Calibration((0.25, 0.5, 0.75), (0.2, 0.5, 0.8), (1, 1, 1), (0, 1, 1))


def pool_adjacent_violators(positives: Sequence[float], rows: Sequence[float]) -> list[float]:
    """The non-decreasing sequence closest to the rates positives[i] / rows[i] in squared error
    weighted by rows[i]: adjacent bins whose rates decrease are pooled until none do."""
    blocks: list[list[float]] = []  # [positives, rows, bins] of each pooled block, left to right
    for k, n in zip(positives, rows):
        blocks.append([float(k), float(n), 1])
        # pool while the previous block's rate exceeds the last one's (cross-multiplied: n > 0)
        while len(blocks) > 1 and blocks[-2][0] * blocks[-1][1] > blocks[-1][0] * blocks[-2][1]:
            k_last, n_last, bins_last = blocks.pop()
            blocks[-1][0] += k_last
            blocks[-1][1] += n_last
            blocks[-1][2] += bins_last
    return [k / n for k, n, bins in blocks for _ in range(int(bins))]


def fit(bins: pd.DataFrame) -> Calibration:
    """The calibration from the reference's bins (columns score, rows, positives; one per bin)."""
    bins = bins[bins[_ROWS] > 0].sort_values("score")
    rows = [int(n) for n in bins[_ROWS]]
    positives = [int(k) for k in bins[_POSITIVES]]
    fitted = pool_adjacent_violators(positives, rows)
    return Calibration(tuple(float(x) for x in bins["score"]), tuple(fitted), tuple(rows), tuple(positives))


def _labeled_scores(plan: Any, window: Window) -> ir.Table:
    rows = window_rows(plan.source, plan.monitor, plan.inputs, window)
    return rows.filter(rows[LABEL].notnull() & rows[SCORE].notnull())


def distinct_scores_query(plan: Any, reference: Window) -> ir.Table:
    """The labeled reference's rows and positives per distinct score, the first MAX_BINS + 1 of
    them: more than MAX_BINS rows back means the scores are binned (:func:`quantile_bins_query`)."""
    scored = _labeled_scores(plan, reference)
    grouped = scored.group_by(score=scored[SCORE]).aggregate(**{_ROWS: scored.count(), _POSITIVES: count_where(scored[LABEL])})
    return grouped.order_by("score").limit(MAX_BINS + 1)


def quantile_bins_query(plan: Any, reference: Window) -> ir.Table:
    """The labeled reference's rows, positives and mean score in MAX_BINS bins of equal rank:
    bin = ⌊percent_rank · MAX_BINS⌋, percent_rank = (rank − 1) / (n − 1) with tied scores
    ranked alike, so they share a bin."""
    scored = _labeled_scores(plan, reference)
    # percent_rank by hand: ClickHouse has no PERCENT_RANK(); rank() is ibis's 0-based min rank
    first_rank = ibis.rank().over(ibis.window(order_by=scored[SCORE])).cast("float64")
    others = ibis.greatest(scored[SCORE].count().over(ibis.window()) - 1, 1).cast("float64")
    rank = first_rank / others
    binned = scored.mutate(**{_BIN: ibis.least((rank * MAX_BINS).floor().cast("int64"), MAX_BINS - 1)})
    return binned.group_by(_BIN).aggregate(
        score=binned[SCORE].mean(), **{_ROWS: binned.count(), _POSITIVES: count_where(binned[LABEL])}
    )


def calibration_due(plan: Any, profile: ReferenceProfile, now: datetime) -> bool:
    """Whether an estimated_performance check needs a calibration the profile lacks (none yet, or
    one of another model configuration) and the reference's labels are complete."""
    monitor = plan.monitor
    if not any(isinstance(c, EstimatedPerformanceCheck) for c in monitor.checks) or monitor.model is None:
        return False
    stored = profile.metrics.get(PROFILE_KEY)
    if stored is not None and stored["fingerprint"] == _fingerprint(monitor):
        return False
    return labels_mature(monitor.model, profile.window, now)


def save_calibration(profile: ReferenceProfile, monitor: Monitor, calibration: Calibration) -> None:
    profile.metrics[PROFILE_KEY] = {"fingerprint": _fingerprint(monitor), "points": calibration.to_rows()}


def stored_calibration(profile: ReferenceProfile, monitor: Monitor) -> Calibration | None:
    """The profile's calibration for this model configuration; None when it has none, or no points."""
    stored = profile.metrics.get(PROFILE_KEY)
    if stored is None or stored["fingerprint"] != _fingerprint(monitor) or not stored["points"]:
        return None
    return Calibration.from_rows(stored["points"])


def _fingerprint(monitor: Monitor) -> str:
    """The model configuration a calibration was learned for: another score or label, another one."""
    config = json.dumps(monitor.model.model_dump(mode="json"), sort_keys=True, default=str)
    return hashlib.sha256(config.encode()).hexdigest()[:16]


# -- the calibrated probability, in SQL -------------------------------------------------------------


# the number of the curve's knots at or below the row's score: left among the rows' columns, as
# dropping it would have ibis write the search out again in each branch that reads the rows
SEGMENT_INDEX = "__calibration_segment"
LEVELS_PER_STEP = 3  # the search tree's levels one projection resolves, by a CASE of 2^3 − 1 comparisons


def with_calibrated(rows: ir.Table, calibration: Calibration) -> ir.Table:
    """``rows`` with the column PROBABILITY (and SEGMENT_INDEX): p at the row's score — the
    curve's first value below its first knot, linear between knots, its last value from the
    last on (scikit-learn's isotonic predict with clip, which is numpy's ``interp``, double for
    double). The score's segment is found by a binary search over the knots, LEVELS_PER_STEP
    levels of it per projection (``dialects.search_step``); then the segment's line."""
    xs, ys = _knots(calibration.scores, calibration.probabilities)
    levels = dialects.search_levels(xs)
    for first in range(0, len(levels), LEVELS_PER_STEP):
        taken = rows[SEGMENT_INDEX] if first else None
        rows = rows.mutate(**{SEGMENT_INDEX: dialects.search_step(rows[SCORE], taken, levels[first : first + LEVELS_PER_STEP])})
    line = dialects.segment_line(rows[SCORE], rows[SEGMENT_INDEX], xs, ys)
    return rows.mutate(**{PROBABILITY: line})


def _knots(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """The points the curve bends at: of a run of equal probabilities (a pooled block) only its
    first and last point, as the curve is flat between them. The same curve with fewer
    segments — the thousand bins of a large reference pool into a few hundred blocks."""
    kept = [i for i in range(len(xs)) if i in (0, len(xs) - 1) or not ys[i - 1] == ys[i] == ys[i + 1]]
    return [xs[i] for i in kept], [ys[i] for i in kept]


# -- what the window's query computes ---------------------------------------------------------------


def _register_sums(query: WindowQuery) -> None:
    """Σp and Σp·ŷ over the rows with a score and a prediction, and their counts: with the
    rows n and the predicted positives Σŷ they give the four cells (:class:`Expected`)."""

    def known(t: ir.Table) -> ir.BooleanValue:
        return t[SCORE].notnull() & t[PREDICTED].notnull()

    zero = ibis.literal(0.0, "float64")
    query.add_sum("estimated:rows", lambda t: count_where(known(t)))
    query.add_sum("estimated:predicted_positive", lambda t: count_where(known(t) & t[PREDICTED]))
    query.add_sum("estimated:p", lambda t: ibis.coalesce(t[PROBABILITY].sum(where=known(t)), zero))
    query.add_sum("estimated:p_predicted", lambda t: ibis.coalesce(t[PROBABILITY].sum(where=known(t) & t[PREDICTED]), zero))


def auc_branch(query: WindowQuery) -> ir.Table:
    """Per segment: the expected positive and negative weights W+ = Σp, W− = Σ(1 − p) of the
    scored rows, and Σ over scores s of W−(s) · (W+(above s) + W+(s) / 2), the trapezoidal
    area under the expected ROC curve times W+ · W−.

    Rows are first summed per score (ties form one step of the curve), then a running sum over
    the scores in descending order gives W+ at or above each score.
    """
    rows = query.rows
    scored = rows.filter(rows[SCORE].notnull()).select(*query.segments, SCORE, PROBABILITY)
    t = by_segment(scored, query.segments)
    steps = t.group_by([GROUPING, SEGMENT, SCORE]).aggregate(positive=t[PROBABILITY].sum(), negative=(1 - t[PROBABILITY]).sum())
    at_or_above = ibis.cumulative_window(group_by=[steps[GROUPING], steps[SEGMENT]], order_by=ibis.desc(steps[SCORE]))
    steps = steps.mutate(positive_at_or_above=steps.positive.sum().over(at_or_above))
    return steps.group_by([GROUPING, SEGMENT]).aggregate(
        positive_weight=steps.positive.sum(),
        negative_weight=steps.negative.sum(),
        ordered_pairs=(steps.negative * (steps.positive_at_or_above - steps.positive / 2)).sum(),
    )


# -- finishing the formulas --------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """A segment's expected confusion matrix."""

    rows: int
    tp: float
    fp: float
    fn: float
    tn: float

    @classmethod
    def read(cls, f: Figures) -> Expected:
        n, predicted = f.count("estimated:rows"), f.count("estimated:predicted_positive")
        p, p_predicted = f["estimated:p"] or 0.0, f["estimated:p_predicted"] or 0.0
        return cls(n, p_predicted, predicted - p_predicted, p - p_predicted, n - predicted - (p - p_predicted))


def _auc(f: Figures) -> tuple[float | None, float, float]:
    """The estimated AUC, and the expected positives and negatives it was measured on."""
    positives, negatives = f["positive_weight"] or 0.0, f["negative_weight"] or 0.0
    return ratio(f["ordered_pairs"], positives * negatives), positives, negatives


# metric: (its value from the expected matrix, its standard error: the realized metric's closed
# form on the expected counts, SPEC §6)
FORMULAS: dict[str, tuple[Callable[[Expected], float | None], Callable[[Expected, float], float | None]]] = {
    "precision": (lambda e: ratio(e.tp, e.tp + e.fp), lambda e, v: standard_errors.binomial(v, e.tp + e.fp)),
    "recall": (lambda e: ratio(e.tp, e.tp + e.fn), lambda e, v: standard_errors.binomial(v, e.tp + e.fn)),
    "specificity": (lambda e: ratio(e.tn, e.tn + e.fp), lambda e, v: standard_errors.binomial(v, e.tn + e.fp)),
    "accuracy": (lambda e: ratio(e.tp + e.tn, e.rows), lambda e, v: standard_errors.binomial(v, e.rows)),
    "f1": (lambda e: ratio(2 * e.tp, 2 * e.tp + e.fp + e.fn), lambda e, v: standard_errors.f1(e.tp, e.fp, e.fn)),
}


# -- the check kind ----------------------------------------------------------------------------------


class EstimatedPerformance(CheckKind):
    check_type = "estimated_performance"

    def ready_on_reference(self, check: EstimatedPerformanceCheck, context: Context) -> bool:
        """Once the calibration is learned (the reference's labels complete), not before."""
        return stored_calibration(context.profile, context.monitor) is not None

    def register(self, check: EstimatedPerformanceCheck, query: WindowQuery, context: Context) -> None:
        calibration = stored_calibration(context.profile, context.monitor)
        if calibration is None:
            return
        query.add_column(PROBABILITY, lambda rows: with_calibrated(rows, calibration))
        if check.metric == "roc_auc":
            query.add_branch(AUC_BRANCH, auc_branch)
        else:
            _register_sums(query)

    def measure(self, check: EstimatedPerformanceCheck, column: str | None, figures: SegmentFigures, context: Context) -> Value:
        if stored_calibration(context.profile, context.monitor) is None:
            return Value.missing(_UNCALIBRATED)
        undefined = Reason(reasons.ZERO_DENOMINATOR, f"estimated {check.metric} is undefined here (a zero denominator)")
        if check.metric == "roc_auc":
            auc, positives, negatives = _auc(figures.branch(AUC_BRANCH))
            n = int(round(positives + negatives))
            details = {"expected_positives": positives, "expected_negatives": negatives}
            value = Value.of(auc, n, undefined, **details)
            error = standard_errors.hanley_mcneil(auc, positives, negatives)
        else:
            expected = Expected.read(figures.main)
            formula, standard_error = FORMULAS[check.metric]
            details = {"expected_tp": expected.tp, "expected_fp": expected.fp, "expected_fn": expected.fn, "expected_tn": expected.tn}
            value = Value.of(formula(expected), expected.rows, undefined, **details)
            error = None if value.value is None else standard_error(expected, value.value)
        return value.with_error(error)

    def has_std_error(self, check: EstimatedPerformanceCheck, macros: Any) -> bool:
        return True

    def validate(self, check: EstimatedPerformanceCheck, index: int, validator: Any) -> None:
        model = validator.spec.model
        where = ("checks", index, "estimated_performance")
        if model is None or model.task != metrics.BINARY:
            validator.error("estimated_performance needs a `model` block of a binary_classification model (score, label)", where)
        elif model.score is None:
            validator.error("estimated_performance calibrates the model's score; set model.score", where)
        else:
            validator.require_labels(where, "estimated_performance (its calibration, on the reference)")


_UNCALIBRATED = Reason(
    reasons.NO_REFERENCE,
    "no calibration yet: the reference window has no scored rows with a label, or its labels are not mature",
)
