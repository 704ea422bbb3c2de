"""Checking model and data checks against the warehouse before anything runs.

Each check kind says what it needs (``CheckKind.validate``); :class:`Validator` holds the
monitor, the source's schema and the problem list, and words the errors: every one located at
the YAML key that caused it, with close matches for a misspelled column or table.
"""

from __future__ import annotations

from typing import Any, Mapping

import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from driftline.errors import ConfigError
from driftline.plan.labels import has_labels, labels_table
from driftline.spec.errors import did_you_mean
from driftline.spec.models import Bound, CheckBase, MetricCheck

# What the label and prediction may be, per task.
_LABEL_TYPES = {
    "binary_classification": ("boolean or a 0/1 number", lambda t: t.is_boolean() or t.is_numeric()),
    "regression": ("numeric", lambda t: t.is_numeric() and not t.is_boolean()),
    "multiclass_classification": ("a class: text, integer or boolean", lambda t: t.is_string() or t.is_integer() or t.is_boolean()),
}


class Validator:
    """The problems found in one monitor's model and data checks."""

    def __init__(self, loaded: Any, table: ir.Table, macros: Mapping[str, Any], problems: list[ConfigError]):
        self.loaded = loaded
        self.spec = loaded.spec
        self.table = table
        self.schema: dict[str, dt.DataType] = dict(table.schema().items())
        self.macros = macros
        self.problems = problems

    def error(self, message: str, path: tuple) -> None:
        self.problems.append(ConfigError(message, self.loaded.positions.locate(path)))

    def column(self, name: str, path: tuple, numeric: bool = False, schema: Mapping[str, dt.DataType] | None = None, where: str = "the source") -> bool:
        """Whether ``name`` is a column (a numeric one, if asked); an error naming it if not."""
        schema = self.schema if schema is None else schema
        if name not in schema:
            self.error(f"column {name!r} not found in {where}{did_you_mean(name, schema)}", path)
            return False
        if numeric and not (schema[name].is_numeric() and not schema[name].is_boolean()):
            self.error(f"column {name!r} is {schema[name]}, not numeric", path)
            return False
        return True

    def require_labels(self, path: tuple, what: str) -> None:
        if not has_labels(self.spec.model):
            self.error(f"{what} compares with ground truth; set model.label (a source column) or model.labels (a table joined on a key)", path)

    def no_relative_threshold(self, check: CheckBase, path: tuple, why: str) -> None:
        for level in ("warn", "fail"):
            threshold = getattr(check, level)
            if isinstance(threshold, Bound) and (threshold.drop is not None or threshold.rise is not None):
                self.error(f"{level}: drop/rise compare with the reference window, but {why}; use above/below", (*path, level))

    def significance(self, check: CheckBase, path: tuple, has_std_error: bool, what: str) -> None:
        """A ``confidence`` needs the value's standard error: an error where ``what`` has none."""
        for level in ("warn", "fail"):
            threshold = getattr(check, level)
            if isinstance(threshold, Bound) and threshold.confidence is not None and not has_std_error:
                self.error(f"{level}: confidence needs the value's std_error, but {what} has none (SPEC §6 lists those that do); remove confidence", (*path, level))

    # -- the model block ---------------------------------------------------------------------------

    def model(self) -> None:
        """The model's outputs and ground truth, typed as its task needs, and the labels table."""
        model = self.spec.model
        if model is None:
            return
        expected, fits = _LABEL_TYPES[model.task]
        for key in ("prediction", "label"):
            name = getattr(model, key)
            if name in self.schema and not fits(self.schema[name]):
                self.error(f"model.{key}: column {name!r} is {self.schema[name]}; a {model.task} {key} is {expected}", ("model", key))
        if model.labels is not None:
            self._labels_table(expected, fits)

    def _labels_table(self, expected: str, fits) -> None:
        labels = self.spec.model.labels
        path = ("model", "labels")
        try:
            table = labels_table(self.table.get_backend(), labels.table)
        except LookupError as error:
            self.error(f"model.labels.table: {error}", (*path, "table"))
            return
        schema = dict(table.schema().items())
        self.column(labels.key, (*path, "key"))
        self.column(labels.key, (*path, "key"), schema=schema, where=f"labels table {labels.table!r}")
        if self.column(labels.column, (*path, "column"), schema=schema, where=f"labels table {labels.table!r}") and not fits(schema[labels.column]):
            self.error(f"model.labels.column: {labels.column!r} is {schema[labels.column]}; a {self.spec.model.task} label is {expected}", (*path, "column"))

    # -- custom metric SQL ----------------------------------------------------------------------------

    def metric_sql(self, check: MetricCheck, index: int) -> None:
        """One aggregate expression over existing columns, with a numeric result."""
        from driftline.plan.custom_metrics import parse_metric
        from driftline.sql_to_ibis import to_ibis

        location = self.loaded.positions.locate(("checks", index, "metric", "sql"))
        what = f"metric {check.name}"
        try:
            expression = parse_metric(check, self.macros, location)
            value = to_ibis(expression, self.table, location=location, what=what)
        except ConfigError as error:
            self.problems.append(error)
            return
        if not (value.type().is_numeric() and not value.type().is_boolean()):
            self.problems.append(ConfigError(f"{what}: expected a number, got a {value.type()} value", location))
