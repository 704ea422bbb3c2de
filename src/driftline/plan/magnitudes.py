"""Units for aggregating doubles at the ends of their range without overflow or underflow.

A mean or a standard deviation sums values and squares. Finite values from about 1e154 up
overflow those sums: DuckDB returns inf or NaN, PostgreSQL fails the whole query ("value out of
range: overflow"). Deviations below about 1e-162 underflow them: a standard deviation of 0, or on
PostgreSQL again a failed query ("underflow"). Such values are therefore aggregated in other units,
powers of two, so that changing the unit is exact:

- where a value above ``HUGE`` (2.6e120, which leaves room for billions of rows) is present, in
  units of ``SCALE``: every finite double is then below 2**424, whose squares fit. Values below
  ``TINY`` read as 0 there (:func:`beside_huge`), since PostgreSQL fails a division whose result
  underflows; beside a huge value they weigh nothing;
- where every value lies below ``TINY``, in units of ``1 / SCALE``: above 2**-474 then, or 0.

Ordinary values keep their own unit: divided by ``SCALE`` they would lose precision to underflow.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

HUGE = 2.0**400
TINY = 2.0**-400
SCALE = 2.0**600


def unit(largest: ir.FloatingValue) -> ir.FloatingValue:
    """The unit for values whose largest magnitude is ``largest``: ``SCALE``, ``1 / SCALE`` or 1."""
    return ibis.cases((largest > HUGE, SCALE), (largest < TINY, 1 / SCALE), else_=1.0)


def beside_huge(value: ir.FloatingValue) -> ir.FloatingValue:
    """``value``, read as 0 below ``TINY``: what a value weighs in units of ``SCALE``."""
    return ibis.ifelse(value.abs() < TINY, 0.0, value)
