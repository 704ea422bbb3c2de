"""Model and data checks (performance, fairness, quality, latency, custom metrics): their
queries and measurements. The drift checks live in ``histograms``/``drift``/``exact``."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from driftline.plan.drift import Measurement
from driftline.plan.profile import ReferenceProfile
from driftline.windows import Window


def measure_model_checks(
    plan: Any,
    window: Window,
    reference: Window,
    profile: ReferenceProfile,
    execute: Callable[[Any], pd.DataFrame],
    now: Any,
) -> list[Measurement]:
    """Measurements of every non-drift check of ``plan.monitor`` for ``window``."""
    return []


def validate_model_checks(loaded: Any, table: Any, macros: Any, problems: list) -> None:
    """Append a located ConfigError to ``problems`` for every model/data check that cannot run
    against ``table`` (unknown columns, wrong types, a metric for another task, bad SQL ...)."""
