"""Which columns a check looks at, and how each is binned (numeric edges or categories)."""

from __future__ import annotations

from dataclasses import dataclass

import ibis.expr.datatypes as dt

from driftline.spec.models import DriftCheck, Monitor

PREDICTION_COLUMN = "__prediction"  # derived as score >= threshold when the model has no prediction column


@dataclass(frozen=True)
class Binning:
    """How one column is cut into bins; part of the reference profile's cache key."""

    kind: str  # "numeric" | "categorical"
    method: str  # "quantile" | "uniform" | "categories"
    bins: int
    max_categories: int
    edges: str = "approximate"  # quantile edges: "approximate" | "exact"

    @property
    def exact(self) -> bool:
        return self.method == "quantile" and self.edges == "exact"

    @property
    def key(self) -> str:
        """``quantile:10``, ``quantile:10:exact``, ``uniform:7``, ``categories:20``: what tells
        two binnings of one column apart, in the profile and in ``driftline_histograms``."""
        if self.kind == "categorical":
            return f"categories:{self.max_categories}"
        return f"{self.method}:{self.bins}" + (":exact" if self.exact else "")


@dataclass(frozen=True)
class DriftColumn:
    name: str
    binning: Binning

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.binning.key)


def selected_columns(selection: str | list[str] | None, monitor: Monitor) -> list[str]:
    """Expand ``features`` / ``score`` / ``prediction`` / ``label`` or an explicit list."""
    if selection is None or selection == "features":
        return list(monitor.features.numeric) + list(monitor.features.categorical)
    if isinstance(selection, list):
        return list(selection)
    model = monitor.model
    if model is None:
        raise ValueError(f"`columns: {selection}` needs a `model` block")
    if selection == "score":
        return [model.score] if model.score else []
    if selection == "prediction":
        return [model.prediction or PREDICTION_COLUMN]
    return [model.label] if model.label else []


def is_numeric(column: str, monitor: Monitor, dtype: dt.DataType) -> bool:
    """Declared categorical features are categorical even when stored as numbers."""
    if column in monitor.features.categorical:
        return False
    if column in monitor.features.numeric:
        return True
    return dtype.is_numeric() and not dtype.is_boolean()


def drift_columns(check: DriftCheck, monitor: Monitor, schema: dict[str, dt.DataType]) -> list[DriftColumn]:
    columns = []
    for name in selected_columns(check.columns, monitor):
        numeric = is_numeric(name, monitor, schema[name])
        binning = Binning(
            kind="numeric" if numeric else "categorical",
            method=check.binning if numeric else "categories",
            bins=check.bins,
            max_categories=check.max_categories,
            edges=check.edges,
        )
        columns.append(DriftColumn(name, binning))
    return columns
