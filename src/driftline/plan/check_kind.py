"""What every kind of model or data check provides, and what it is given.

A kind (performance, fairness, quality, latency, custom metric) plans and measures its checks in
three steps, each a method of :class:`CheckKind`:

1. ``register`` the aggregates a check needs in the window's one query (``WindowQuery``);
2. ``measure`` one check for one column and segment from the query's figures, as a
   :class:`Value` — a number, or None with the reason in its details (``driftline.reasons``);
3. ``validate`` the check against the warehouse schema before anything runs.

``model_checks`` drives the steps for every check; the kinds never loop over segments or
windows themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from driftline import reasons
from driftline.plan.labels import labels_mature, mature_at
from driftline.plan.profile import ReferenceProfile
from driftline.plan.window_query import SegmentFigures, WindowQuery
from driftline.reasons import Reason
from driftline.spec.models import CheckBase, Monitor
from driftline.windows import Window


@dataclass
class Context:
    """What a window's measurement knows besides the query's figures."""

    monitor: Monitor
    window: Window
    now: datetime
    dialect: str
    profile: ReferenceProfile
    inputs: Any  # frame.CheckInputs
    previous_schema: Mapping[str, str] | None = None  # columns of the previous run, for schema_change

    @property
    def labels_mature(self) -> bool:
        return labels_mature(self.monitor.model, self.window, self.now)

    def not_mature(self, **details: Any) -> Value:
        """insufficient_data until the window's labels are complete."""
        when = mature_at(self.monitor.model, self.window).isoformat()
        why = Reason(reasons.LABELS_NOT_MATURE, f"labels not mature until {when}")
        return Value.missing(why, mature_at=when, **details)


NOTHING_TO_MEASURE = Reason(reasons.EMPTY_WINDOW, "no rows to measure")


@dataclass
class Value:
    """One measured value, the number of rows behind it, and details for the result row."""

    value: float | None
    n: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    std_error: float | None = None  # the value's sampling error (driftline.standard_errors)
    # the value's weight when segments add up to the whole (its denominator: precision's predicted
    # positives, a mean's values); None where the metric is no weighted mean (driftline.contributions)
    weight: float | None = None

    @classmethod
    def of(cls, value: float | None, n: int | None, undefined: Reason, empty: Reason = NOTHING_TO_MEASURE, **details: Any) -> Value:
        """``value``, or None with a reason: ``undefined`` when it had rows to go on, else ``empty``."""
        if value is None:
            details.update((undefined if n else empty).details)
        return cls(value, n, details)

    def weighted(self, weight: float | None) -> Value:
        """This value with its weight (see ``driftline.contributions``)."""
        self.weight = weight if self.value is not None else None
        return self

    def with_error(self, std_error: float | None) -> Value:
        """This value with its standard error (none for a missing value)."""
        self.std_error = std_error if self.value is not None else None
        return self

    @classmethod
    def missing(cls, why: Reason, n: int | None = None, **details: Any) -> Value:
        """No value, and why."""
        return cls(None, n, {**details, **why.details})

    def below_min_rows(self, min_rows: int) -> Value:
        """This value's rows are too few to judge by (SPEC §3 ``min_rows``): none, and why."""
        why = Reason(reasons.MIN_ROWS, f"not enough rows ({self.n} < min_rows {min_rows})")
        return Value.missing(why, self.n, **self.details)


class CheckKind:
    """One kind of check; subclasses override what differs from these defaults."""

    check_type: str = ""

    def metric(self, check: CheckBase) -> str:
        """The ``metric`` written to the result rows."""
        return check.metric  # type: ignore[attr-defined]

    def columns(self, check: CheckBase, monitor: Monitor) -> list[str | None]:
        """The columns the check reports on, one result row each (None: the check as a whole)."""
        return [None]

    def segmented(self, check: CheckBase) -> bool:
        """Whether the check is measured per segment too, or overall only."""
        return True

    def sized(self, check: CheckBase) -> bool:
        """Whether fewer than ``min_rows`` rows make the value insufficient_data."""
        return True

    def needs_labels(self, check: CheckBase) -> bool:
        """Whether the value waits for mature labels."""
        return False

    def ready_on_reference(self, check: CheckBase, context: Context) -> bool:
        """Whether the check can be measured on the reference window yet, for a relative
        threshold's reference value: not before the reference's labels are complete, if it
        reads them (a value measured too early would be kept for good)."""
        return not (self.needs_labels(check) and not context.labels_mature)

    def register(self, check: CheckBase, query: WindowQuery, context: Context) -> None:
        raise NotImplementedError

    def measure(self, check: CheckBase, column: str | None, figures: SegmentFigures, context: Context) -> Value:
        raise NotImplementedError

    def has_std_error(self, check: CheckBase, macros: Mapping[str, Any]) -> bool:
        """Whether the check's values carry a standard error (SPEC §6), which a threshold's
        ``confidence`` needs; ``macros`` expand a custom metric's SQL."""
        return False

    def validate(self, check: CheckBase, index: int, validator: Any) -> None:
        """Append a located ConfigError to ``validator`` for every problem (see check_validation)."""
