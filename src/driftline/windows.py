"""Monitor windows: alignment to the schedule, which windows are due, reference windows.

Windows are ``[start, start + every)``, aligned to multiples of ``every`` since
1970-01-01T00:00Z (SPEC §4). All times are naive UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from driftline.spec.models import Reference, Schedule

EPOCH = datetime(1970, 1, 1)

EARLIEST, LATEST = EPOCH, datetime(2200, 1, 1)
"""The range of "now" (``--at``, ``--start``, ``--end``) that driftline accepts. Outside it a
moment is a typo, not a plan: ``--at 1900-01-01`` would record a window from 1899 that every later
run then catches up from, 46,000 daily windows; near year 9999 the window arithmetic (the end of
a window, plus a delay) overflows Python's datetime."""


@dataclass(frozen=True, order=True)
class Window:
    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def check_supported(moment: datetime) -> datetime:
    """``moment``, or a ValueError when it lies outside [EARLIEST, LATEST)."""
    if not EARLIEST <= moment < LATEST:
        raise ValueError(
            f"{moment.isoformat()} is outside the range driftline supports, "
            f"from {EARLIEST:%Y-%m-%d} up to {LATEST:%Y-%m-%d}; check the date"
        )
    return moment


def align(moment: datetime, every: timedelta) -> datetime:
    """The latest window boundary at or before ``moment``."""
    steps = (moment - EPOCH) // every
    return EPOCH + steps * every


def last_due_end(now: datetime, schedule: Schedule) -> datetime:
    """The end of the latest window that is due: ``now >= end + delay``."""
    return align(now - schedule.delay, schedule.every)


def due_windows(now: datetime, schedule: Schedule, completed_until: datetime | None) -> list[Window]:
    """Windows to evaluate now: the latest due one on a first run, else every due window after
    the last completed one (catch-up after downtime)."""
    end = last_due_end(now, schedule)
    if completed_until is None:
        return [Window(end - schedule.every, end)]
    return windows_between(completed_until, end, schedule.every)


def windows_between(start: datetime, end: datetime, every: timedelta) -> list[Window]:
    """The whole windows inside ``[start, end)``: a window that began before ``start`` is not
    one of them, as a window that ends after ``end`` is not."""
    windows, cursor = [], align(start, every)
    if cursor < start:
        cursor += every
    while cursor + every <= end:
        windows.append(Window(cursor, cursor + every))
        cursor += every
    return windows


def reference_window(reference: Reference, current: Window) -> Window:
    """The fixed reference window, or the trailing one just before ``current``."""
    if reference.trailing is not None:
        return Window(current.start - reference.trailing, current.start)
    return Window(reference.start, reference.end)
