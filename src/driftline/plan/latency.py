"""Latency (SPEC §6): a quantile of a numeric column, linear-interpolated as numpy's default and
``percentile_cont``; ``dialects.quantiles`` picks the form each warehouse can compute."""

from __future__ import annotations

from driftline import dialects, reasons
from driftline.plan.check_kind import CheckKind, Context, Value
from driftline.plan.histograms import clean
from driftline.plan.window_query import SegmentFigures, WindowQuery, valid_key
from driftline.reasons import Reason
from driftline.spec.models import LatencyCheck, Monitor


def _key(check: LatencyCheck) -> str:
    return f"latency:{check.column}:{check.quantile!r}"


class Latency(CheckKind):
    check_type = "latency"

    def metric(self, check: LatencyCheck) -> str:
        return "latency"

    def columns(self, check: LatencyCheck, monitor: Monitor) -> list[str | None]:
        return [check.column]

    def register(self, check: LatencyCheck, query: WindowQuery, context: Context) -> None:
        def quantile(t):
            values = clean(t[check.column]).cast("float64")
            return dialects.quantiles(values, [check.quantile], context.dialect)[0]

        query.add_sum(valid_key(check.column), lambda t: clean(t[check.column]).count())
        query.add(_key(check), quantile)

    def measure(self, check: LatencyCheck, column: str | None, figures: SegmentFigures, context: Context) -> Value:
        f = figures.main
        # n counts the column's values, so none to measure is the same reason with or without rows
        no_values = Reason(reasons.NO_VALUES, f"no values in {check.column}")
        return Value.of(f[_key(check)], f.count(valid_key(check.column)), no_values, no_values, quantile=check.quantile)

    def validate(self, check: LatencyCheck, index: int, validator) -> None:
        validator.column(check.column, ("checks", index, "latency", "column"), numeric=True)
