"""The reference's side of "which segment explains a change": each segment's value and weight on
the reference window, per performance, estimated-performance and custom metric check, measured
once per reference profile (one query for all of them) and stored in it; and, per window, the
overall result's decomposition (``driftline.contributions``) from those and the window's own
segment values, kept in the overall measurement's ``explain`` (shown when it breaches)."""

from __future__ import annotations


from driftline import contributions
from driftline.plan.drift import Measurement
from driftline.plan.profile import StoredPerCheck
from driftline.spec.models import CheckBase, EstimatedPerformanceCheck, MetricCheck, PerformanceCheck, check_name

KEY = "segment_shares"


def decomposable(check: CheckBase) -> bool:
    """Performance, estimated performance and custom metric checks: overall values whose change a
    segment can explain."""
    return isinstance(check, (PerformanceCheck, EstimatedPerformanceCheck, MetricCheck))


def weight_of(m: Measurement) -> float | None:
    """The measurement's weight; an estimate's from its expected confusion matrix."""
    if m.weight is not None or m.value is None:
        return m.weight
    d = m.details
    if "expected_tp" in d and m.metric in contributions.CONFUSION_DENOMINATORS:
        return contributions.CONFUSION_DENOMINATORS[m.metric](d["expected_tp"], d["expected_fp"], d["expected_fn"], d["expected_tn"])
    if "expected_positives" in d:
        return d["expected_positives"] * d["expected_negatives"]
    return None


class SegmentShares(StoredPerCheck):
    """Per decomposable check: [column, segment_key, segment_value, value, weight] on the
    reference."""

    KEY = KEY

    def due(self, checks: list[CheckBase]) -> list[CheckBase]:
        if not self.monitor.segments:
            return []
        return [c for c in checks if decomposable(c) and not self.has(c)]

    def save(self, check: CheckBase, measurements: list[Measurement]) -> None:
        rows = [[m.column_name, m.segment_key, m.segment_value, m.value, weight_of(m)] for m in measurements]
        self.stored[check_name(check)] = {"fingerprint": self.fingerprint(check), "values": rows}

    def explain(self, measurements: list[Measurement]) -> None:
        """Put each overall decomposable measurement's contributions in its ``explain``."""
        by_check: dict[str, list[Measurement]] = {}
        for m in measurements:
            by_check.setdefault(m.check_name, []).append(m)
        for name, mine in by_check.items():
            check = mine[0].check
            if not decomposable(check) or not self.has(check):
                continue
            for overall in (m for m in mine if m.segment_key is None and m.value is not None):
                splits = self._splits(overall, mine, self.stored[name]["values"])
                if splits:
                    overall.explain.update(contributions.details(splits))

    def _splits(self, overall: Measurement, mine: list[Measurement], stored: list) -> dict[str, contributions.Split]:
        reference = {(key, value): (v, w) for column, key, value, v, w in stored if column == overall.column_name}
        reference_overall = reference.get((None, None), (None, None))[0]
        if reference_overall is None:
            return {}
        splits = {}
        for column in self.monitor.segments:
            ref_sides = {value: (v, w or 0.0) for (key, value), (v, w) in reference.items() if key == column and v is not None}
            cur_sides = {m.segment_value: (m.value, weight_of(m) or 0.0) for m in mine
                         if m.segment_key == column and m.column_name == overall.column_name and m.value is not None}  # fmt: skip
            if ref_sides or cur_sides:
                splits[column] = contributions.decompose(reference_overall, overall.value, ref_sides, cur_sides)
        return splits
