"""The reference profile: bin edges, categories and reference counts, computed once and reused.

A profile is keyed by the monitor, its reference window and the binning configuration, stored
as JSON in ``driftline_profiles`` and read back by every later run on the same reference.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from driftline.plan.columns import DriftColumn
from driftline.spec.models import CheckBase, Monitor, check_name
from driftline.windows import Window

OTHER = "__other__"
NULL_SEGMENT = "__null__"

SegmentKey = tuple[str | None, str | None]  # (segment_key, segment_value); (None, None) = overall


@dataclass(frozen=True)
class ColumnBins:
    """The bins of one column: interior numeric edges, or the kept categories (+ __other__)."""

    column: str
    binning: str
    kind: str
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return (len(self.edges) if self.kind == "numeric" else len(self.categories)) + 1

    def bounds(self) -> list[tuple[float | None, float | None]]:
        """(lower, upper) of each bin; None for open ends and categorical bins."""
        if self.kind != "numeric":
            return [(None, None)] * self.size
        cuts: list[float | None] = [None, *self.edges, None]
        return list(zip(cuts[:-1], cuts[1:]))

    def labels(self) -> list[str]:
        if self.kind != "numeric":
            return [*self.categories, OTHER]
        return [f"[{_fmt(lo, '-inf')}, {_fmt(hi, '+inf')})" for lo, hi in self.bounds()]


def _fmt(value: float | None, open_end: str) -> str:
    return open_end if value is None else f"{value:.6g}"


@dataclass
class ReferenceProfile:
    key: str
    window: Window
    bins: dict[tuple[str, str], ColumnBins] = field(default_factory=dict)
    counts: dict[tuple[str, str, str | None, str | None], list[int]] = field(default_factory=dict)
    rows: dict[SegmentKey, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "bins": [vars(b) | {"edges": list(b.edges), "categories": list(b.categories)} for b in self.bins.values()],
                "counts": [[*k, v] for k, v in self.counts.items()],
                "rows": [[*k, v] for k, v in self.rows.items()],
                "metrics": self.metrics,
            }
        )

    @classmethod
    def from_json(cls, key: str, window: Window, text: str) -> ReferenceProfile:
        data = json.loads(text)
        bins = {}
        for item in data["bins"]:
            b = ColumnBins(item["column"], item["binning"], item["kind"], tuple(item["edges"]), tuple(item["categories"]))
            bins[(b.column, b.binning)] = b
        counts = {tuple(item[:4]): item[4] for item in data["counts"]}
        rows = {tuple(item[:2]): item[2] for item in data["rows"]}
        return cls(key, window, bins, counts, rows, data.get("metrics", {}))


class StoredPerCheck:
    """What a reference profile keeps for each check under one key of ``profile.metrics``, with a
    fingerprint of the check's configuration: a check whose configuration changed is measured on
    the reference again rather than judged against values of another check."""

    KEY: str  # where the entries live in the profile's metrics

    def __init__(self, profile: ReferenceProfile, monitor: Monitor):
        self.stored: dict[str, Any] = profile.metrics.setdefault(self.KEY, {})
        self.monitor = monitor

    def configuration(self, check: CheckBase) -> list[Any]:
        """What the stored values depend on: the check, the model block and min_rows."""
        model = self.monitor.model.model_dump(mode="json") if self.monitor.model else None
        return [check.model_dump(mode="json"), model, self.monitor.min_rows]

    def fingerprint(self, check: CheckBase) -> str:
        config = json.dumps(self.configuration(check), sort_keys=True, default=str)
        return hashlib.sha256(config.encode()).hexdigest()[:16]

    def has(self, check: CheckBase) -> bool:
        entry = self.stored.get(check_name(check))
        return entry is not None and entry["fingerprint"] == self.fingerprint(check)


def ordered_segments(*seen: Iterable[SegmentKey]) -> list[SegmentKey]:
    """Every segment in ``seen`` (and the overall one), overall first, then by key and value:
    the one order of a window's results."""
    keys = {(None, None)}.union(*seen)
    return sorted(keys, key=lambda k: (k[0] is not None, k[0] or "", k[1] or ""))


def profile_key(monitor: str, window: Window, columns: list[DriftColumn], segments: list[str], source: str) -> str:
    """Same monitor, reference window, columns, binning, segments and source rows → same profile."""
    config = json.dumps(
        [monitor, window.start.isoformat(), window.end.isoformat(), sorted(c.key for c in columns), segments, source]
    )
    return hashlib.sha256(config.encode()).hexdigest()[:32]


def distinct_edges(values: list[float | None]) -> tuple[float, ...]:
    """SPEC §6: the edges are the distinct values among the reference quantiles."""
    # `+ 0.0` turns -0.0 into 0.0: where a column holds both zeros, engines disagree on the sign
    # of a zero quantile (DuckDB -0.0, Spark 0.0), and a "-0" bin label would follow.
    finite = sorted({float(v) + 0.0 for v in values if v is not None and math.isfinite(float(v))})
    return tuple(finite)


def uniform_edges(low: float | None, high: float | None, bins: int) -> tuple[float, ...]:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return ()
    if high <= low:
        return (float(low),)
    step = (high - low) / bins
    return distinct_edges([low + step * k for k in range(1, bins)])


def now_utc() -> datetime:
    return datetime.utcnow().replace(microsecond=0)
