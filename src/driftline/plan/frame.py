"""The rows a window's model and data checks read.

The window's source rows, with the ground truth joined in when it lives in another table, and
the model's outputs read for its task into three standard columns:

- ``__label``: the ground truth — boolean for binary classification (true = the positive class,
  a number reads as ``= 1``), float64 for regression, text for multiclass;
- ``__predicted``: the prediction, typed as the label; for binary classification without a
  ``prediction`` column, ``score >= threshold``;
- ``__score``: the score as float64.

NaN reads as null throughout, so one rule (``is not null``) decides which rows count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import ibis
import ibis.expr.types as ir

from driftline.plan.histograms import as_text, clean
from driftline.plan.labels import RAW_LABEL, labels_table, with_labels
from driftline.plan.source import Source
from driftline.spec.models import EstimatedPerformanceCheck, FairnessCheck, Model, Monitor, PerformanceCheck
from driftline.windows import Window

LABEL, PREDICTED, SCORE = "__label", "__predicted", "__score"


@dataclass
class CheckInputs:
    """What model and data checks read besides the monitor's pruned source."""

    table: ir.Table  # the source as bound: its full schema is what schema_change compares
    labels: ir.Table | None = None  # model.labels.table, when ground truth arrives separately
    metric_sql: dict[str, Any] = field(default_factory=dict)  # parsed, macro-expanded `metric` SQL by check name
    history: ir.Table | None = None  # driftline_results, where schema_change finds the previous run


def uses_model(monitor: Monitor) -> bool:
    """Whether any check reads the model's outputs (performance, estimated performance or fairness)."""
    model_reading = (PerformanceCheck, EstimatedPerformanceCheck, FairnessCheck)
    return monitor.model is not None and any(isinstance(c, model_reading) for c in monitor.checks)


def resolve_labels(con: Any, monitor: Monitor) -> ir.Table | None:
    """The table of ``model.labels``, when a check reads labels from it."""
    if not uses_model(monitor) or monitor.model.labels is None:
        return None
    return labels_table(con, monitor.model.labels.table)


def model_columns(monitor: Monitor) -> list[str]:
    """The source columns the model's outputs and label are read from."""
    model = monitor.model
    if not uses_model(monitor):
        return []
    names = [model.score, model.prediction, model.label, model.labels.key if model.labels else None]
    return [n for n in names if n]


def window_rows(source: Source, monitor: Monitor, inputs: CheckInputs, window: Window) -> ir.Table:
    """The window's rows, with ``__label``, ``__predicted`` and ``__score`` when a check needs them."""
    rows = source.between(window)
    if not uses_model(monitor):
        return rows
    model = monitor.model
    rows = with_labels(rows, model, inputs.labels)
    return rows.mutate(**_standard_columns(rows, model))


def _standard_columns(rows: ir.Table, model: Model) -> Mapping[str, ir.Column]:
    read, dtype = _READERS[model.task], _TYPES[model.task]
    label = read(rows[RAW_LABEL]) if RAW_LABEL in rows.columns else ibis.null(dtype)
    score = clean(rows[model.score].cast("float64")) if model.score else ibis.null("float64")
    predicted = read(rows[model.prediction]) if model.prediction else score >= model.threshold
    return {LABEL: label, PREDICTED: predicted, SCORE: score}


def _positive(value: ir.Column) -> ir.BooleanColumn:
    """True for the positive class: a boolean as is; a number 1 is true, 0 false, and any other
    number null — not a label of this task (performance says how many, see ``invalid_labels``)."""
    if value.type().is_boolean():
        return value
    number = clean(value)
    return ibis.cases((number == 1, True), (number == 0, False), else_=ibis.null("boolean"))


_READERS = {
    "binary_classification": _positive,
    "regression": lambda value: clean(value.cast("float64")),
    "multiclass_classification": as_text,
}
_TYPES = {"binary_classification": "boolean", "regression": "float64", "multiclass_classification": "string"}
