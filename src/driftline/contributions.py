"""Which segment explains a change: the overall change of a metric since the reference, split
into one contribution per value of each segment column (SPEC §6, "Contributions").

A rate or mean over a window is the weighted mean of its segments' values, R = Σ w_s · r_s, w_s
the segment's share of the metric's denominator (precision: the predicted positives; a custom
``avg(x)``: the values of x). The change R_cur − R_ref splits exactly into, per segment,

    rate effect  w_ref · (r_cur − r_ref)            (the segment got better or worse)
    mix effect   (w_cur − w_ref) · (r_cur − R_ref)  (the segment's share moved)

whose sum over the segments is R_cur − R_ref, because Σ w_cur = Σ w_ref = 1. A segment present
on one side only has no rate effect; its whole contribution is mix, w_cur (r_cur − R_ref) or
−w_ref (r_ref − R_ref). For a metric that is not such a weighted mean (roc_auc counts pairs across
segments too) the weights are its pairs and what the segments leave unexplained is reported as
``unexplained``.

>>> ref = {"a": (0.8, 50), "b": (0.6, 50)}
>>> cur = {"a": (0.8, 50), "b": (0.4, 50)}
>>> split = decompose(0.7, 0.6, ref, cur)
>>> [(s.value, round(s.total, 3)) for s in split.segments], round(split.unexplained, 12)
([('b', -0.1), ('a', 0.0)], 0.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

TOP = 3  # segments named per segment column


@dataclass(frozen=True)
class Contribution:
    value: str  # the segment column's value
    rate: float
    mix: float

    @property
    def total(self) -> float:
        return self.rate + self.mix


@dataclass(frozen=True)
class Split:
    """One segment column's decomposition of the overall change."""

    change: float
    segments: list[Contribution]  # largest |total| first

    @property
    def mix(self) -> float:
        return sum(s.mix for s in self.segments)

    @property
    def unexplained(self) -> float:
        return self.change - sum(s.total for s in self.segments)


Sides = Mapping[str, tuple[float | None, float]]  # segment value → (metric value, weight)


# A confusion-matrix rate's denominator: its weight when segments are added up.
CONFUSION_DENOMINATORS = {
    "accuracy": lambda tp, fp, fn, tn: tp + fp + fn + tn,
    "precision": lambda tp, fp, fn, tn: tp + fp,
    "recall": lambda tp, fp, fn, tn: tp + fn,
    "f1": lambda tp, fp, fn, tn: 2 * tp + fp + fn,
    "fpr": lambda tp, fp, fn, tn: fp + tn,
    "specificity": lambda tp, fp, fn, tn: fp + tn,
}


def decompose(reference: float, current: float, reference_segments: Sides, current_segments: Sides) -> Split:
    """The change ``current − reference`` split over the segments (values and weights per side)."""
    total_ref = sum(w for _, w in reference_segments.values())
    total_cur = sum(w for _, w in current_segments.values())
    contributions = []
    for value in sorted(set(reference_segments) | set(current_segments)):
        r_ref, w_ref = reference_segments.get(value, (None, 0.0))
        r_cur, w_cur = current_segments.get(value, (None, 0.0))
        w_ref = w_ref / total_ref if total_ref and r_ref is not None else 0.0
        w_cur = w_cur / total_cur if total_cur and r_cur is not None else 0.0
        if w_ref and w_cur:
            contributions.append(Contribution(value, w_ref * (r_cur - r_ref), (w_cur - w_ref) * (r_cur - reference)))
        elif w_cur:
            contributions.append(Contribution(value, 0.0, w_cur * (r_cur - reference)))
        elif w_ref:
            contributions.append(Contribution(value, 0.0, -w_ref * (r_ref - reference)))
    contributions.sort(key=lambda c: (-abs(c.total), c.value))
    return Split(current - reference, contributions)


def details(splits: Mapping[str, Split]) -> dict:
    """``details["contributions"]`` of an overall result: per segment column, the change, its
    largest contributors, the mix effect and what is unexplained; and one summary line."""
    by_column = {
        column: {
            "change": split.change,
            "top": [{"segment": c.value, "contribution": c.total, "rate": c.rate, "mix": c.mix} for c in split.segments[:TOP]],
            "mix": split.mix,
            "unexplained": split.unexplained,
        }
        for column, split in splits.items()
    }
    return {"contributions": by_column, "explained_by": summary(splits)}


def summary(splits: Mapping[str, Split]) -> str:
    """``region: latam −0.21 of −0.25 (mix −0.03); channel: ...``: the largest contributor of
    each segment column and the column's mix effect.

    >>> summary({"region": Split(-0.25, [Contribution("latam", -0.19, -0.02)])})
    'region: latam −0.21 of −0.25 (region mix −0.02)'
    """
    parts = []
    for column, split in splits.items():
        if not split.segments:
            continue
        top = split.segments[0]
        parts.append(f"{column}: {top.value} {_signed(top.total)} of {_signed(split.change)} ({column} mix {_signed(split.mix)})")
    return "; ".join(parts)


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−").replace("+", "+" if x > 0 else "")
