"""Why a result is ``insufficient_data``: the codes of ``driftline_results.reason`` (SPEC §5).

A code is for machines (the views, ``run``'s re-evaluation of windows whose labels have matured,
BI filters); the sentence for people, with the numbers that matter ("not enough rows (42 <
min_rows 100)"), goes into the result's ``details`` as ``explanation``. A measurement hands both
over in its details (:meth:`Reason.details`); writing the result row moves the code into its own
column (``judge.result_row``).
"""

from __future__ import annotations

from dataclasses import dataclass

LABELS_NOT_MATURE = "labels_not_mature"
MIN_ROWS = "min_rows"
EMPTY_WINDOW = "empty_window"
NO_LABELS = "no_labels"
NO_VALUES = "no_values"
ZERO_DENOMINATOR = "zero_denominator"
NO_REFERENCE = "no_reference"
NO_HISTORY = "no_history"
NO_PREVIOUS_RUN = "no_previous_run"
BAD_LABELS = "bad_labels"
BAD_SCORES = "bad_scores"
TOO_FEW_GROUPS = "too_few_groups"

# Every code and what it means; SPEC §5 lists the same.
REASONS: dict[str, str] = {
    LABELS_NOT_MATURE: "the window's labels are not complete yet (window end + labels.delay is after now); "
    "run evaluates the window again once they are",
    MIN_ROWS: "fewer rows than min_rows in the window or segment",
    EMPTY_WINDOW: "no rows to measure (freshness_hours: the source has no rows at or before now)",
    NO_LABELS: "the window has rows but none with a label",
    NO_VALUES: "no value to measure: the column is all null (mean: no finite value; stddev: fewer than two), "
    "or a custom metric's SQL returned null",
    ZERO_DENOMINATOR: "a ratio whose denominator is zero, so the metric is undefined (precision without "
    "predicted positives, roc_auc with one class only, ...)",
    NO_REFERENCE: "nothing to compare with on the reference window: it has no rows (drift), the metric is "
    "undefined there ({drop}/{rise} thresholds), or it has no categories (new_category_rate)",
    NO_HISTORY: "an anomaly check with fewer than min_history earlier values",
    NO_PREVIOUS_RUN: "schema_change on the first run: no earlier schema to compare with",
    BAD_LABELS: "labels that are neither 0/1 nor boolean",
    BAD_SCORES: "scores outside [0, 1] where the metric needs probabilities (log_loss, brier)",
    TOO_FEW_GROUPS: "a fairness comparison without two groups of at least min_rows rows with a defined rate "
    "(or without its reference group)",
}


@dataclass(frozen=True)
class Reason:
    """Why a value is missing: a code of :data:`REASONS` and the sentence for people."""

    code: str
    explanation: str

    @property
    def details(self) -> dict[str, str]:
        """The two as a measurement's details carry them."""
        return {"reason": self.code, "explanation": self.explanation}
