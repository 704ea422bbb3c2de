"""Fairness across the values of a group column (SPEC §6), as fairlearn's ``between_groups``.

The warehouse returns, per segment and per group value, the row count and the binary confusion
counts (the same ones ``performance`` reads); Python turns them into each group's rates:

- selection rate SR(g): share of the group's rows predicted positive;
- TPR(g) = TP / (TP + FN), FPR(g) = FP / (FP + TN), precision(g) = TP / (TP + FP).

A metric compares the groups with at least ``min_rows`` rows; smaller groups are left out and
listed in ``details["excluded_groups"]`` (group → rows); ``n_current`` is all the segment's rows,
kept or not, as for every other check. A group whose rate has a zero denominator (no positive
labels for its TPR, say) takes no part in that rate's comparison, and a comparison needs two
groups. ``disparate_impact`` is SR(g) / SR(reference group) for every other group; the value is
the lowest of these ratios, which is below 0.8 exactly when some group breaks the four-fifths
rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable

from driftline import metrics, reasons, standard_errors
from driftline.plan.aggregates import Figures, ratio
from driftline.plan.check_kind import CheckKind, Context, Value
from driftline.plan.performance import add_confusion
from driftline.plan.window_query import ROWS_KEY, SegmentFigures, WindowQuery
from driftline.reasons import Reason
from driftline.spec.models import FairnessCheck, Monitor


@dataclass(frozen=True)
class GroupRates:
    n: int
    selection_rate: float | None
    tpr: float | None
    fpr: float | None
    precision: float | None

    @classmethod
    def read(cls, f: Figures) -> GroupRates:
        tp, fp, fn, tn = (f.count(k) for k in ("tp", "fp", "fn", "tn"))
        return cls(
            n=f.count(ROWS_KEY),
            selection_rate=ratio(f.count("predicted_positive"), f.count("predictions")),
            tpr=ratio(tp, tp + fn),
            fpr=ratio(fp, fp + tn),
            precision=ratio(tp, tp + fp),
        )


Groups = dict[str, GroupRates]


@dataclass(frozen=True)
class GroupErrors:
    """The binomial standard error of each of a group's rates, over the rate's denominator."""

    selection_rate: float | None
    tpr: float | None
    fpr: float | None
    precision: float | None

    @classmethod
    def read(cls, f: Figures) -> GroupErrors:
        tp, fp, fn, tn = (f.count(k) for k in ("tp", "fp", "fn", "tn"))
        predictions = f.count("predictions")
        binomial = standard_errors.binomial
        return cls(
            selection_rate=binomial(ratio(f.count("predicted_positive"), predictions), predictions),
            tpr=binomial(ratio(tp, tp + fn), tp + fn),
            fpr=binomial(ratio(fp, fp + tn), fp + tn),
            precision=binomial(ratio(tp, tp + fp), tp + fp),
        )


Errors = dict[str, GroupErrors]


def _extremes(groups: Groups, rate: str) -> tuple[str, str] | None:
    """The groups holding the lowest and the highest ``rate`` (ties: the first by value)."""
    defined = [g for g in groups if getattr(groups[g], rate) is not None]
    if len(defined) < 2:
        return None
    return min(defined, key=lambda g: getattr(groups[g], rate)), max(defined, key=lambda g: getattr(groups[g], rate))


def spread_error(groups: Groups, errors: Errors, rate: str) -> float | None:
    """max − min's error: the two groups' errors added in quadrature (groups are disjoint rows)."""
    extremes = _extremes(groups, rate)
    if extremes is None:
        return None
    low, high = extremes
    return standard_errors.difference(getattr(errors[low], rate), getattr(errors[high], rate))


def ratio_error(groups: Groups, errors: Errors, numerator: str, denominator: str) -> float | None:
    """SR(numerator) / SR(denominator)'s error by the delta method."""
    return standard_errors.ratio(
        groups[numerator].selection_rate, errors[numerator].selection_rate,
        groups[denominator].selection_rate, errors[denominator].selection_rate,
    )  # fmt: skip


def equalized_odds_error(groups: Groups, errors: Errors) -> float | None:
    """The error of whichever spread, TPR's or FPR's, is the larger (the value reported)."""
    tpr, fpr = spread(groups, "tpr"), spread(groups, "fpr")
    if tpr is None or fpr is None:
        return None
    return spread_error(groups, errors, "tpr" if tpr >= fpr else "fpr")


def parity_ratio_error(groups: Groups, errors: Errors) -> float | None:
    extremes = _extremes(groups, "selection_rate")
    return None if extremes is None else ratio_error(groups, errors, *extremes)


METRIC_ERRORS: dict[str, Callable[[Groups, Errors], float | None]] = {
    "demographic_parity_difference": lambda g, e: spread_error(g, e, "selection_rate"),
    "demographic_parity_ratio": parity_ratio_error,
    "equal_opportunity_difference": lambda g, e: spread_error(g, e, "tpr"),
    "equalized_odds_difference": equalized_odds_error,
    "predictive_parity_difference": lambda g, e: spread_error(g, e, "precision"),
}


def spread(groups: Groups, rate: str) -> float | None:
    """max − min of a rate over the groups where it is defined; None with fewer than two."""
    values = [getattr(g, rate) for g in groups.values() if getattr(g, rate) is not None]
    return max(values) - min(values) if len(values) >= 2 else None


def parity_ratio(groups: Groups) -> float | None:
    values = [g.selection_rate for g in groups.values() if g.selection_rate is not None]
    return ratio(min(values), max(values)) if len(values) >= 2 else None


def equalized_odds(groups: Groups) -> float | None:
    tpr, fpr = spread(groups, "tpr"), spread(groups, "fpr")
    return None if tpr is None or fpr is None else max(tpr, fpr)


def reference_group(groups: Groups, check: FairnessCheck) -> str | None:
    """The check's ``reference_group``, or the largest group (ties: the first by value)."""
    if check.reference_group is not None:
        return check.reference_group if check.reference_group in groups else None
    return min(groups, key=lambda g: (-groups[g].n, g)) if groups else None


def disparate_impacts(groups: Groups, reference: str) -> dict[str, float | None]:
    base = groups[reference].selection_rate
    return {g: ratio(rates.selection_rate, base) for g, rates in groups.items() if g != reference}


METRICS: dict[str, Callable[[Groups], float | None]] = {
    "demographic_parity_difference": lambda g: spread(g, "selection_rate"),
    "demographic_parity_ratio": parity_ratio,
    "equal_opportunity_difference": lambda g: spread(g, "tpr"),
    "equalized_odds_difference": equalized_odds,
    "predictive_parity_difference": lambda g: spread(g, "precision"),
}


class Fairness(CheckKind):
    check_type = "fairness"

    def columns(self, check: FairnessCheck, monitor: Monitor) -> list[str | None]:
        return [check.group]

    def sized(self, check: FairnessCheck) -> bool:
        return False  # min_rows applies per group instead

    def needs_labels(self, check: FairnessCheck) -> bool:
        return metrics.needs_labels(self.check_type, check.metric)

    def has_std_error(self, check: FairnessCheck, macros) -> bool:
        return True

    def register(self, check: FairnessCheck, query: WindowQuery, context: Context) -> None:
        query.add_sum(ROWS_KEY, lambda t: t.count())  # the segment's rows: n_current, as other checks
        add_confusion(partial(query.add_per_value, check.group))

    def measure(self, check: FairnessCheck, column: str | None, figures: SegmentFigures, context: Context) -> Value:
        per_group = sorted(figures.per_value(check.group).items())
        everyone = {g: GroupRates.read(f) for g, f in per_group}
        groups = {g: r for g, r in everyone.items() if r.n >= context.monitor.min_rows}
        errors = {g: GroupErrors.read(f) for g, f in per_group if g in groups}
        details = {
            "groups": {g: asdict(r) for g, r in groups.items()},
            "excluded_groups": {g: r.n for g, r in everyone.items() if g not in groups},
        }
        n = figures.main.count(ROWS_KEY)  # every row of the segment, excluded groups included
        if self.needs_labels(check) and not context.labels_mature:
            return context.not_mature(**details)
        undefined = Reason(reasons.TOO_FEW_GROUPS, f"{check.metric} needs two groups of at least min_rows rows with a defined rate")
        if check.metric != "disparate_impact":
            value = Value.of(METRICS[check.metric](groups), n, undefined, **details)
            return value.with_error(METRIC_ERRORS[check.metric](groups, errors))
        reference = reference_group(groups, check)
        if reference is None:
            return Value.missing(Reason(reasons.TOO_FEW_GROUPS, "the reference group is missing or has fewer than min_rows rows"), n, **details)
        impacts = disparate_impacts(groups, reference)
        defined = [v for v in impacts.values() if v is not None]
        details.update(reference_group=reference, disparate_impact=impacts)
        lowest = min((g for g, v in impacts.items() if v is not None), key=lambda g: impacts[g], default=None)
        error = ratio_error(groups, errors, lowest, reference) if lowest is not None else None
        return Value.of(min(defined) if defined else None, n, undefined, **details).with_error(error)

    def validate(self, check: FairnessCheck, index: int, validator) -> None:
        where = ("checks", index, "fairness")
        if validator.spec.model is None:
            validator.error("a fairness check needs a `model` block (task, score or prediction)", where)
            return
        if validator.spec.model.task != "binary_classification":
            validator.error(f"fairness metrics compare binary decisions; this model's task is {validator.spec.model.task}", (*where, "metric"))
        validator.column(check.group, (*where, "group"))
        if self.needs_labels(check):
            validator.require_labels((*where, "metric"), f"metric {check.metric}")
