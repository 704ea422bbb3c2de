"""The typed monitor specification (SPEC §3), validated by pydantic.

Every model forbids unknown keys, so a misspelled key is an error with a close-match suggestion
(see ``spec/loader.py``, which turns pydantic's errors into ``path:line:column: message``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from driftline import metrics
from driftline.spec.types import Duration, Timestamp, format_duration

NAME_PATTERN = r"^[a-z0-9_]+$"

# The metric names come from the one registry of metric facts (driftline.metrics).
DRIFT_METHODS = metrics.names("drift")
PERFORMANCE_METRICS = metrics.names("performance")
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
    """A threshold in one of its explicit forms; exactly one key is set."""

    above: float | None = None
    below: float | None = None
    outside: tuple[float, float] | None = None
    drop: float | None = None
    rise: float | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Bound:
        given = [k for k, v in self.__dict__.items() if v is not None]
        if len(given) != 1:
            raise ValueError("a threshold takes exactly one of above, below, outside, drop, rise")
        if self.outside is not None and self.outside[0] > self.outside[1]:
            raise ValueError("outside: [lo, hi] needs lo <= hi")
        return self


Threshold = Union[float, Bound]


class Anomaly(Strict):
    method: Literal["zscore", "mad"] = "mad"
    sensitivity: float = Field(3.0, gt=0)
    history: int = Field(28, ge=2)
    min_history: int = Field(7, ge=2)
    seasonality: Literal["none", "day_of_week", "hour_of_day"] = "none"
    direction: Literal["both", "up", "down"] = "both"


class CheckBase(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    warn: Threshold | None = None
    fail: Threshold | None = None
    anomaly: Anomaly | None = None


ColumnSelection = Union[Literal["features", "score", "prediction", "label"], list[str]]


class DriftCheck(CheckBase):
    type: Literal["drift"] = "drift"
    columns: ColumnSelection = "features"
    method: Literal[DRIFT_METHODS] = "psi"  # type: ignore[valid-type]
    p_value: float | None = Field(None, gt=0, lt=1)
    binning: Literal["quantile", "uniform"] = "quantile"
    # Quantile edges: the warehouse's approximate quantiles (fast; SPEC §6 bounds their rank
    # error) or exact ones, as numpy's default interpolation.
    edges: Literal["approximate", "exact"] = "approximate"
    bins: int = Field(10, ge=2, le=1000)
    max_categories: int = Field(20, ge=1, le=1000)
    epsilon: float = Field(1e-4, gt=0, lt=1)
    normalize: bool = True

    @model_validator(mode="after")
    def _default_thresholds(self) -> DriftCheck:
        # SPEC §6: psi defaults to warn 0.1 and fail 0.25 when no threshold is written.
        if self.method == "psi" and self.warn is None and self.fail is None and self.anomaly is None:
            return self.model_copy(update={"warn": 0.1, "fail": 0.25})
        return self


class PerformanceCheck(CheckBase):
    type: Literal["performance"] = "performance"
    metric: Literal[PERFORMANCE_METRICS]  # type: ignore[valid-type]


class FairnessCheck(CheckBase):
    type: Literal["fairness"] = "fairness"
    metric: Literal[FAIRNESS_METRICS]  # type: ignore[valid-type]
    group: str
    reference_group: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _four_fifths_rule(cls, data: Any) -> Any:
        # SPEC §6: disparate impact breaches below 0.8 (the four-fifths rule) unless told otherwise.
        untold = isinstance(data, dict) and all(data.get(k) is None for k in ("warn", "fail", "anomaly"))
        if untold and data.get("metric") == "disparate_impact":
            return {**data, "fail": {"below": 0.8}}
        return data


class QualityCheck(CheckBase):
    type: Literal["quality"] = "quality"
    metric: Literal[QUALITY_METRICS]  # type: ignore[valid-type]
    columns: ColumnSelection | None = None
    min: float | None = None
    max: float | None = None
    # new_category_rate: how many of the most frequent reference values make up the known set.
    max_categories: int = Field(1000, ge=1, le=10000)

    @model_validator(mode="after")
    def _range_given(self) -> QualityCheck:
        if self.metric == "out_of_range_rate" and self.min is None and self.max is None:
            raise ValueError("out_of_range_rate needs `min:`, `max:` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("quality check needs `min` <= `max`")
        return self


class LatencyCheck(CheckBase):
    type: Literal["latency"] = "latency"
    column: str
    quantile: float = Field(0.95, gt=0, lt=1)


class MetricCheck(CheckBase):
    type: Literal["metric"] = "metric"
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    sql: str


Check = Annotated[
    Union[DriftCheck, PerformanceCheck, FairnessCheck, QualityCheck, LatencyCheck, MetricCheck],
    Field(discriminator="type"),
]
CHECK_TYPES = ("drift", "performance", "fairness", "quality", "latency", "metric")


class Source(Strict):
    table: str | None = None
    sql: str | None = None
    timestamp: str
    where: str | None = None

    @model_validator(mode="after")
    def _table_or_sql(self) -> Source:
        if (self.table is None) == (self.sql is None):
            raise ValueError("source takes exactly one of `table` or `sql`")
        return self


class Labels(Strict):
    table: str
    key: str
    column: str
    delay: Duration = Field("0h", validate_default=True)


class Model(Strict):
    task: Literal["binary_classification", "multiclass_classification", "regression"] = (
        "binary_classification"
    )
    score: str | None = None
    prediction: str | None = None
    threshold: float = 0.5
    label: str | None = None
    labels: Labels | None = None
    key: str | None = None

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
    every: Duration
    delay: Duration = Field("0h", validate_default=True)

    @field_validator("every", mode="after")
    @classmethod
    def _every_is_positive(cls, every: timedelta) -> timedelta:
        return _positive(every, "every")


class Reference(Strict):
    start: Timestamp | None = None
    end: Timestamp | None = None
    trailing: Duration | None = None

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
    numeric: list[str] = []
    categorical: list[str] = []

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


class Alerts(Strict):
    channel: str | None = None
    min_severity: Literal["warn", "fail"] = "warn"
    # Duration defaults are written as in YAML (and validated), so the JSON Schema shows "24h".
    cooldown: Duration = Field("24h", validate_default=True)


class Monitor(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str | None = None
    owner: str | None = None
    runbook: str | None = None
    tags: list[str] = []
    source: Source
    model: Model | None = None
    schedule: Schedule
    reference: Reference
    segments: list[str] = []
    # A segment column with more distinct values in the reference is refused at validate: every
    # value would be a segment, thousands of result rows per check and window.
    max_segment_values: int = Field(100, ge=1)
    min_rows: int = Field(100, ge=1)
    features: Features = Field(default_factory=Features)
    checks: list[Check] = Field(min_length=1)
    alerts: Alerts = Field(default_factory=Alerts)

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
