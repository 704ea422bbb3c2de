"""The typed monitor specification (SPEC §3), validated by pydantic.

Every model forbids unknown keys, so a misspelled key is an error with a close-match suggestion
(see ``spec/loader.py``, which turns pydantic's errors into ``path:line:column: message``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driftline import metrics
from driftline.spec.types import Duration, Timestamp, format_duration

NAME_PATTERN = r"^[a-z0-9_]+$"

# The metric names come from the one registry of metric facts (driftline.metrics).
DRIFT_METHODS = metrics.names("drift")
PERFORMANCE_METRICS = metrics.names("performance")
ESTIMATED_PERFORMANCE_METRICS = metrics.names("estimated_performance")
FAIRNESS_METRICS = metrics.names("fairness")
QUALITY_METRICS = metrics.names("quality")


class ProblemAt(ValueError):
    """A validation problem of one item inside the value being validated: ``at`` is its path
    below that value (``(3,)``: the fourth check), so the error points at the item itself."""

    def __init__(self, message: str, at: tuple):
        super().__init__(message)
        self.at = at


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Bound(Strict):
    """A threshold in one of its explicit forms (exactly one form key), with an optional confidence."""

    above: float | None = Field(None, description="Breach when the value is above this number.")
    below: float | None = Field(None, description="Breach when the value is below this number.")
    outside: tuple[float, float] | None = Field(None, description="Breach when the value is outside [lo, hi].")
    drop: float | None = Field(None, description="Breach when the value is this much (absolute) lower than on the reference window.")
    rise: float | None = Field(None, description="Breach when the value is this much (absolute) higher than on the reference window.")
    reference_band: float | None = Field(None, gt=0, description="Breach outside the mean ± this many standard deviations of the metric over the reference cut into the schedule's windows.")
    confidence: float | None = Field(None, gt=0, lt=1, description="With above, below, outside, drop or rise: breach only when the value is also beyond the bound by z × std_error, z the one-sided normal quantile of this confidence (1.645 at 0.95).")

    # The keys naming the form; ``confidence`` qualifies one of them.
    FORMS: ClassVar[tuple[str, ...]] = ("above", "below", "outside", "drop", "rise", "reference_band")

    @model_validator(mode="after")
    def _exactly_one(self) -> Bound:
        given = [k for k in self.FORMS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a threshold takes exactly one of above, below, outside, drop, rise, reference_band")
        if self.outside is not None and self.outside[0] > self.outside[1]:
            raise ValueError("outside: [lo, hi] needs lo <= hi")
        if self.confidence is not None and self.reference_band is not None:
            raise ValueError("confidence qualifies above, below, outside, drop or rise; a reference_band is already learned from the reference's spread")
        return self

    @property
    def form(self) -> str:
        """The key naming this threshold's form (drop, outside, ...)."""
        return next(k for k in self.FORMS if getattr(self, k) is not None)


Threshold = Union[float, Bound]


class Anomaly(Strict):
    method: Literal["zscore", "mad"] = Field("mad", description="How the band is learned from the check's own history: mean ± sensitivity·sd (zscore) or median ± sensitivity·MAD (mad).")
    sensitivity: float = Field(3.0, gt=0, description="Width of the band in standard deviations (zscore) or scaled MADs (mad).")
    history: int = Field(28, ge=2, description="How many earlier windows the band is learned from.")
    min_history: int = Field(7, ge=2, description="Fewer earlier values than this: the check is insufficient_data.")
    seasonality: Literal["none", "day_of_week", "hour_of_day"] = Field("none", description="Compare only with windows of the same weekday or hour of day.")
    direction: Literal["both", "up", "down"] = Field("both", description="Which side of the band breaches.")


class CheckBase(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = Field(None, description="The check's name, unique in the monitor ([a-z0-9_]+); derived from type, metric and method when omitted.")
    warn: Threshold | None = Field(None, description="Threshold for status warn: a number or {above|below|outside|drop|rise: ...}.")
    fail: Threshold | None = Field(None, description="Threshold for status fail: a number or {above|below|outside|drop|rise: ...}.")
    anomaly: Anomaly | None = Field(None, description="A dynamic band learned from this check's stored history, instead of or beside fixed thresholds.")


ColumnSelection = Union[Literal["features", "score", "prediction", "label"], list[str]]


class DriftCheck(CheckBase):
    """How far the current window's distribution of each column is from the reference's."""

    type: Literal["drift"] = "drift"
    columns: ColumnSelection = Field("features", description="Columns compared with the reference: features, score, prediction, label or a list of column names.")
    method: Literal[DRIFT_METHODS] = Field("psi", description="The drift statistic (SPEC section 6).")  # type: ignore[valid-type]
    p_value: float | None = Field(None, gt=0, lt=1, description="Breach only when the statistical test is also significant at this level.")
    binning: Literal["quantile", "uniform"] = Field("quantile", description="Numeric bins: reference quantiles or equal widths.")
    # Quantile edges: the warehouse's approximate quantiles (fast; SPEC §6 bounds their rank
    # error) or exact ones, as numpy's default interpolation.
    edges: Literal["approximate", "exact"] = Field("approximate", description="Quantile edges: the warehouse's approximate quantiles or exact ones.")
    bins: int = Field(10, ge=2, le=1000, description="Number of bins of a numeric column.")
    max_categories: int = Field(20, ge=1, le=1000, description="Most frequent categories kept; the rest are pooled into one bin.")
    epsilon: float = Field(1e-4, gt=0, lt=1, description="Smallest share given to an empty bin, so psi and kl stay finite.")
    normalize: bool = Field(True, description="Compare shares (true) rather than counts.")

    @model_validator(mode="after")
    def _default_thresholds(self) -> DriftCheck:
        # SPEC §6: psi defaults to warn 0.1 and fail 0.25 when no threshold is written.
        if self.method == "psi" and self.warn is None and self.fail is None and self.anomaly is None:
            return self.model_copy(update={"warn": 0.1, "fail": 0.25})
        return self


class PerformanceCheck(CheckBase):
    """A model metric against the ground truth, once the window's labels are in."""

    type: Literal["performance"] = "performance"
    metric: Literal[PERFORMANCE_METRICS] = Field(description="The performance metric, computed once the window's labels are in.")  # type: ignore[valid-type]


class EstimatedPerformanceCheck(CheckBase):
    """A binary classifier's performance estimated from its scores before labels arrive (CBPE, SPEC §6)."""

    type: Literal["estimated_performance"] = "estimated_performance"
    metric: Literal[ESTIMATED_PERFORMANCE_METRICS] = Field(  # type: ignore[valid-type]
        description="The metric estimated from the calibrated scores, without the window's labels."
    )


class FairnessCheck(CheckBase):
    """A metric compared across the groups of a column."""

    type: Literal["fairness"] = "fairness"
    metric: Literal[FAIRNESS_METRICS] = Field(description="The fairness metric, comparing groups of `group`.")  # type: ignore[valid-type]
    group: str = Field(description="The column whose values are the groups compared.")
    reference_group: str | None = Field(None, description="The group the others are compared with; default: the largest.")

    @model_validator(mode="before")
    @classmethod
    def _four_fifths_rule(cls, data: Any) -> Any:
        # SPEC §6: disparate impact breaches below 0.8 (the four-fifths rule) unless told otherwise.
        untold = isinstance(data, dict) and all(data.get(k) is None for k in ("warn", "fail", "anomaly"))
        if untold and data.get("metric") == "disparate_impact":
            return {**data, "fail": {"below": 0.8}}
        return data


class QualityCheck(CheckBase):
    """A data-quality rate of the window's rows: nulls, out-of-range values, new categories ..."""

    type: Literal["quality"] = "quality"
    metric: Literal[QUALITY_METRICS] = Field(description="The data-quality metric.")  # type: ignore[valid-type]
    columns: ColumnSelection | None = Field(None, description="Columns measured: features, score, prediction, label or a list of column names.")
    min: float | None = Field(None, description="out_of_range_rate: values below this are out of range.")
    max: float | None = Field(None, description="out_of_range_rate: values above this are out of range.")
    # new_category_rate: how many of the most frequent reference values make up the known set.
    max_categories: int = Field(1000, ge=1, le=10000, description="new_category_rate: how many of the most frequent reference values make up the known set.")

    @model_validator(mode="after")
    def _range_given(self) -> QualityCheck:
        if self.metric == "out_of_range_rate" and self.min is None and self.max is None:
            raise ValueError("out_of_range_rate needs `min:`, `max:` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("quality check needs `min` <= `max`")
        return self


class LatencyCheck(CheckBase):
    """A quantile of a latency column."""

    type: Literal["latency"] = "latency"
    column: str = Field(description="The latency column (a number, e.g. milliseconds).")
    quantile: float = Field(0.95, gt=0, lt=1, description="The quantile of the latency measured, e.g. 0.99.")


class MetricCheck(CheckBase):
    """A custom aggregate SQL expression, judged like any metric."""

    type: Literal["metric"] = "metric"
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(description="The metric's name, unique in the monitor ([a-z0-9_]+).")
    sql: str = Field(description="An aggregate SQL expression over the window's rows; macros may be called.")


Check = Annotated[
    Union[DriftCheck, PerformanceCheck, EstimatedPerformanceCheck, FairnessCheck, QualityCheck, LatencyCheck, MetricCheck],
    Field(discriminator="type"),
]
CHECK_TYPES = ("drift", "performance", "estimated_performance", "fairness", "quality", "latency", "metric")


class Source(Strict):
    table: str | None = Field(None, description="The table: [catalog.][schema.]table.")
    sql: str | None = Field(None, description="Or a single SELECT over tables, in the warehouse's dialect.")
    # Resolved when the project is loaded (driftline.dbt_project), which fills in `table`.
    dbt: str | None = Field(
        None,
        description="Or a dbt model (`lead_predictions`, `ref('lead_predictions')`) or source (`source('crm', 'leads')`), "
        "read from the manifest of the project's `dbt.project_dir`.",
    )
    timestamp: str = Field(description="The event-time column; windows are cut on it.")
    where: str | None = Field(None, description="An optional SQL predicate the rows must meet.")

    @model_validator(mode="after")
    def _table_or_sql(self) -> Source:
        if sum(given is not None for given in (self.table, self.sql, self.dbt)) != 1:
            raise ValueError("source takes exactly one of `table`, `sql` or `dbt`")
        return self


class Labels(Strict):
    table: str = Field(description="The table holding the ground truth.")
    key: str = Field(description="The join key, present in both tables.")
    column: str = Field(description="The ground-truth column.")
    delay: Duration = Field("0h", validate_default=True, description="A window's performance is computed once it is this old (labels arrive late).")


class Model(Strict):
    task: Literal["binary_classification", "multiclass_classification", "regression"] = Field(
        "binary_classification", description="What the model predicts."
    )
    score: str | None = Field(None, description="Column: probability of the positive class (binary).")
    prediction: str | None = Field(None, description="Column: the predicted label or value; binary default: score >= threshold.")
    threshold: float = Field(0.5, description="Score at or above which a binary prediction is positive.")
    label: str | None = Field(None, description="Column: the ground truth, when it is in the source table.")
    labels: Labels | None = Field(None, description="Or: ground truth that arrives later in another table.")
    key: str | None = Field(None, description="Column identifying a prediction.")

    @model_validator(mode="after")
    def _one_label_source(self) -> Model:
        if self.label is not None and self.labels is not None:
            raise ValueError("model takes `label` (in the source table) or `labels` (joined), not both")
        if self.task == "binary_classification" and self.score is None and self.prediction is None:
            raise ValueError("a binary_classification model needs `score` or `prediction`")
        if self.task != "binary_classification" and self.prediction is None:
            raise ValueError(f"a {self.task} model needs `prediction`")
        return self


class Schedule(Strict):
    every: Duration = Field(description="Window length and cadence: 15m, 1h, 1d, 7d ...")
    delay: Duration = Field("0h", validate_default=True, description="A window is due once now >= window end + delay.")

    @field_validator("every", mode="after")
    @classmethod
    def _every_is_positive(cls, every: timedelta) -> timedelta:
        return _positive(every, "every")


class Reference(Strict):
    start: Timestamp | None = Field(None, description="Start of a fixed reference window [start, end): a date or an ISO-8601 timestamp (UTC unless an offset is given).")
    end: Timestamp | None = Field(None, description="End (excluded) of a fixed reference window: a date or an ISO-8601 timestamp.")
    trailing: Duration | None = Field(None, description="Or: the reference is this long span just before each current window.")

    @field_validator("trailing", mode="after")
    @classmethod
    def _trailing_is_positive(cls, trailing: timedelta | None) -> timedelta | None:
        return trailing if trailing is None else _positive(trailing, "trailing")

    @model_validator(mode="after")
    def _fixed_or_trailing(self) -> Reference:
        fixed = self.start is not None or self.end is not None
        if fixed == (self.trailing is not None):
            raise ValueError("reference takes `start` and `end`, or `trailing`")
        if fixed and (self.start is None or self.end is None or self.start >= self.end):
            raise ValueError("reference needs `start` before `end`")
        return self


class Features(Strict):
    numeric: list[str] = Field([], description="Numeric feature columns.")
    categorical: list[str] = Field([], description="Categorical feature columns.")

    @model_validator(mode="after")
    def _each_column_once(self) -> Features:
        """A column is binned one way: listed twice, its results would be written twice."""
        for kind, columns in (("numeric", self.numeric), ("categorical", self.categorical)):
            twice = next((i for i, c in enumerate(columns) if c in columns[:i]), None)
            if twice is not None:
                raise ProblemAt(f"column {columns[twice]!r} is listed twice under `{kind}`; list it once", (kind, twice))
        both = next((i for i, c in enumerate(self.categorical) if c in self.numeric), None)
        if both is not None:
            message = f"column {self.categorical[both]!r} is listed under both `numeric` and `categorical`; keep it in one"
            raise ProblemAt(message, ("categorical", both))
        return self


ROUTE_KINDS = ("slack", "webhook", "teams", "email")


class Route(Strict):
    """Where a monitor's alerts go: exactly one of ``slack`` (a channel) or the name of a receiver
    of the project's ``notify:`` block, and which of the episode's changes it is told."""

    slack: str | None = Field(None, description='A Slack channel, e.g. "#growth-ml".')
    webhook: str | None = Field(None, description="The name of a webhook under the project's notify.webhooks.")
    teams: str | None = Field(None, description="The name of a Teams webhook under the project's notify.teams.")
    email: str | None = Field(None, description="The name of an email receiver under the project's notify.email.")
    min_severity: Literal["warn", "fail"] | None = Field(
        None, description="The least severity this route is told of; the monitor's alerts.min_severity by default.",
    )
    when: Literal["opened", "every_transition"] = Field(
        "every_transition",
        description="opened: once per episode, when it first reaches min_severity (an action); "
        "every_transition: opened, escalated, reminders and resolved.",
    )

    @model_validator(mode="after")
    def _one_destination(self) -> Route:
        given = [kind for kind in ROUTE_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(f"a route takes exactly one of {', '.join(ROUTE_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(kind for kind in ROUTE_KINDS if getattr(self, kind) is not None)

    @property
    def target(self) -> str:
        """The channel (slack) or the receiver's name."""
        return getattr(self, self.kind)


class Alerts(Strict):
    channel: str | None = Field(None, description="Slack channel; overrides the project's default.")
    min_severity: Literal["warn", "fail"] = Field("warn", description="The least severe status that sends a message.")
    # Duration defaults are written as in YAML (and validated), so the JSON Schema shows "24h".
    cooldown: Duration = Field("24h", validate_default=True, description="No repeated message for a breach that stays open this long.")
    routes: list[Route] | None = Field(
        None, description="Where alerts go; without it, to Slack: `channel`, else the project's notify.slack.channel.",
    )

    @model_validator(mode="after")
    def _routes_once(self) -> Alerts:
        if self.routes is None:
            return self
        if self.channel is not None:
            raise ValueError('`channel` and `routes` together: name the channel in routes as `- slack: "#channel"`')
        seen: set[tuple[str, str]] = set()
        for i, route in enumerate(self.routes):
            if (route.kind, route.target) in seen:
                raise ProblemAt(f"route {route.kind}: {route.target!r} is listed twice; list it once", ("routes", i))
            if route.kind == "slack" and any(kind == "slack" for kind, _ in seen):
                raise ProblemAt("one Slack route per monitor: its alerts keep one thread per episode", ("routes", i))
            seen.add((route.kind, route.target))
        return self


class Monitor(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(description="The monitor's unique name ([a-z0-9_]+).")
    description: str | None = Field(None, description="What the model does, shown in alerts and the report.")
    owner: str | None = Field(None, description="Who owns the model; shown and mentioned in alerts.")
    runbook: str | None = Field(None, description="Link to what to do when the monitor breaches.")
    tags: list[str] = Field([], description="Free-form tags.")
    source: Source = Field(description="Where the predictions are: a table or a SELECT, and the event-time column.")
    model: Model | None = Field(None, description="The model's columns; enables performance and fairness checks.")
    schedule: Schedule = Field(description="Window length and when a window is due.")
    reference: Reference = Field(description="The baseline for drift and for relative thresholds: start/end, or trailing.")
    segments: list[str] = Field([], description="Every check runs overall and per value of each listed column.")
    # A segment column with more distinct values in the reference is refused at validate: every
    # value would be a segment, thousands of result rows per check and window.
    max_segment_values: int = Field(100, ge=1, description="More distinct values of a segment column in the reference: invalid.")
    min_rows: int = Field(100, ge=1, description="Fewer current rows than this: status insufficient_data.")
    features: Features = Field(default_factory=Features, description="The model's input columns, numeric and categorical.")
    checks: list[Check] = Field(min_length=1, description="What is measured and judged each window.")
    alerts: Alerts = Field(default_factory=Alerts, description="Where and when breaches are sent.")

    @field_validator("checks", mode="after")
    @classmethod
    def _unique_check_names(cls, checks: list[CheckBase]) -> list[CheckBase]:
        seen: dict[str, int] = {}
        for i, check in enumerate(checks):
            name = check_name(check)
            if name in seen:
                raise ProblemAt(f"named {name!r} as checks[{seen[name]}] is; give one of them a `name:`", (i,))
            seen[name] = i
        return checks

    @field_validator("checks", mode="before")
    @classmethod
    def _tag_checks(cls, value: Any) -> Any:
        """`- drift: {...}` → `{"type": "drift", ...}` so pydantic can discriminate on the key."""
        if not isinstance(value, list):
            return value
        return [_tag_check(item) for item in value]


def _positive(duration: timedelta, key: str) -> timedelta:
    if duration <= timedelta(0):
        raise ValueError(f"`{key}` must be longer than 0, got {format_duration(duration)}")
    return duration


def _tag_check(item: Any) -> Any:
    """`{"drift": {...}}` → `{..., "type": "drift"}`. Anything else is left as it is, for pydantic
    to reject at the item's own position (spec/errors.py words those errors)."""
    if not (isinstance(item, dict) and len(item) == 1):
        return item
    (kind, body), = item.items()
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return item
    return {**body, "type": kind}


def check_name(check: CheckBase) -> str:
    """The check's `name`, or one derived from its type, metric and method."""
    if check.name:
        return check.name
    if isinstance(check, DriftCheck):
        subject = check.columns if isinstance(check.columns, str) and check.columns != "features" else None
        return "_".join(p for p in ("drift", subject, check.method) if p)
    if isinstance(check, LatencyCheck):
        return f"latency_{check.column}_p{round(check.quantile * 100):g}"
    return f"{check.type}_{check.metric}"  # type: ignore[attr-defined]
