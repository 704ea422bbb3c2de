"""Ground truth: where a window's labels come from, and when they are complete enough to use.

Labels live in the source table (``model.label``) or arrive later in another table
(``model.labels``: table, key, column, delay), joined on the key. A window's label-dependent
figures are computed only once ``now >= window end + delay``; before that they are
insufficient_data with the reason :data:`LABELS_NOT_MATURE`, and a later ``run`` evaluates the
window again once its labels have matured (see ``api.run``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import ibis
import ibis.expr.types as ir

from driftline import reasons
from driftline.spec.models import Model
from driftline.windows import Window

LABELS_NOT_MATURE = reasons.LABELS_NOT_MATURE  # the reason code of a window waiting for labels
RAW_LABEL = "__raw_label"  # the label column as stored, before it is read for the task
_LABEL_KEY = "__label_key"


def delay(model: Model | None) -> timedelta:
    """How long after a window ends its labels are complete (0 for labels in the source)."""
    return model.labels.delay if model is not None and model.labels is not None else timedelta(0)


def mature_at(model: Model | None, window: Window) -> datetime:
    return window.end + delay(model)


def labels_mature(model: Model | None, window: Window, now: datetime) -> bool:
    return now >= mature_at(model, window)


def with_labels(rows: ir.Table, model: Model, labels: ir.Table | None) -> ir.Table:
    """``rows`` with the raw label in ``__raw_label``: the source column, or the joined one.

    The join is a LEFT JOIN, so rows whose label has not arrived stay, with a null label, and are
    counted as unlabeled. It joins one label per key (:func:`one_label_per_key`), so a key the
    labels table repeats cannot repeat a prediction.
    """
    if model.labels is None:
        return rows.mutate(**{RAW_LABEL: rows[model.label]}) if model.label else rows
    if labels is None:
        raise ValueError("model.labels is set but its table was not resolved")
    # Only the keys of the window's rows are grouped, not the labels table's whole history.
    theirs = labels.semi_join(rows, labels[model.labels.key] == rows[model.labels.key])
    truth = one_label_per_key(theirs, model.labels.key, model.labels.column)
    joined = rows.left_join(truth, rows[model.labels.key] == truth[_LABEL_KEY])
    return joined.select(*rows.columns, RAW_LABEL)


def one_label_per_key(labels: ir.Table, key: str, column: str) -> ir.Table:
    """``__label_key`` and ``__raw_label``, one row per key: the key's label when its copies
    agree (a label delivered twice), null when they do not — an unknown label, counted as
    unlabeled, rather than one copy picked at random or the prediction counted twice."""
    label = labels[column]
    # PostgreSQL has no min/max of a boolean: bool_and/bool_or are its lowest and highest.
    low, high = (label.all(), label.any()) if label.type().is_boolean() else (label.min(), label.max())
    per_key = labels.group_by(**{_LABEL_KEY: labels[key]}).aggregate(__low=low, __high=high)
    agreed = ibis.ifelse(per_key.__low == per_key.__high, per_key.__low, ibis.null(label.type()))
    return per_key.select(_LABEL_KEY, **{RAW_LABEL: agreed})


def labels_table(con: ibis.BaseBackend, name: str) -> ir.Table:
    """The labels table by its ``[catalog.][schema.]table`` name; LookupError when missing."""
    from driftline import connect

    return connect.find_table(con, name)


def has_labels(model: Model | None) -> bool:
    return model is not None and (model.label is not None or model.labels is not None)
