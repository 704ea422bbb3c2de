"""Translate a parsed SQL expression into an ibis expression, so ibis compiles it for every backend.

User SQL never reaches a warehouse as text. :func:`driftline.macros.parse_expression` turns it into
a sqlglot tree; :func:`to_ibis` rebuilds that tree node by node with ibis operations over a table:

>>> import ibis
>>> from driftline.errors import Location
>>> from driftline.macros import parse_expression
>>> leads = ibis.table({"score": "float64", "converted": "boolean"}, name="leads")
>>> here = Location("monitors/leads.yml", 12, 11)
>>> tree = parse_expression("avg(case when converted then 1.0 else 0.0 end)", macros={}, location=here, what="sql")
>>> print(ibis.to_sql(leads.aggregate(rate=to_ibis(tree, leads, location=here)), dialect="postgres"))
SELECT
  AVG(CASE WHEN "t0"."converted" THEN 1.0 ELSE 0.0 END) AS "rate"
FROM "leads" AS "t0"

Only a known set of constructs translates (see ``SUPPORTED``); anything else is a ConfigError that
names it. Where backends disagree, the translation picks one meaning and spells it out in SQL:

- ``/`` is true division with a float64 result, and dividing by zero gives NULL (``x / NULLIF(y,
  0)``): integer division, an error or infinity would otherwise depend on the warehouse.
- Numeric literals are float64 when written with a point or exponent (``0.1``), else int64: SQL's
  exact decimals are not portable across backends, and monitors compare doubles anyway.
- ``AVG``/``SUM`` (and the spread aggregates) of a boolean count TRUE as 1, FALSE as 0.
- ``LOG(x)`` is the base-10 logarithm, ``LOG(b, x)`` the base-b one; ``LN(x)`` the natural one.
- ``CAST(x AS FLOAT)`` is double precision, as in PostgreSQL, Snowflake and BigQuery.
"""

from __future__ import annotations

import difflib
import operator
from collections.abc import Callable

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
from ibis.common.annotations import ValidationError
from ibis.common.exceptions import IbisError
from sqlglot import exp

from driftline.errors import ConfigError, Location

SUPPORTED = (
    "columns, number/string/TRUE/FALSE/NULL literals, + - * / %, unary -, = != <> < <= > >=, "
    "IS [NOT] DISTINCT FROM, AND, OR, NOT, [NOT] IN (list), [NOT] BETWEEN, IS [NOT] NULL/TRUE/FALSE, "
    "[NOT] LIKE, [NOT] ILIKE, CASE, IF, CAST, TRY_CAST, COALESCE, NULLIF, ABS, ROUND, LN, LOG, EXP, SQRT, "
    "POWER, MOD, LEAST, GREATEST, LOWER, UPPER, LENGTH, TRIM, LTRIM, RTRIM, COUNT(*), COUNT(x), "
    "COUNT(DISTINCT x), SUM, AVG, MIN, MAX, STDDEV, STDDEV_SAMP, STDDEV_POP, VARIANCE, VAR_SAMP, VAR_POP"
)
"""What :func:`to_ibis` translates, as listed in its error messages."""

_Rule = Callable[["_Translator", exp.Expression], ir.Value]
_RULES: dict[type[exp.Expression], _Rule] = {}

# Errors ibis raises when an operation does not fit its operands' types.
_IBIS_TYPE_ERRORS = (IbisError, ValidationError, TypeError, ValueError, AttributeError)


def to_ibis(expr: exp.Expression, table: ibis.Table, *, location: Location, what: str = "") -> ir.Value:
    """Translate a parsed (macro-expanded) SQL expression into an ibis value over ``table``.

    ``location`` and ``what`` (the key being translated, e.g. ``where``) locate every ConfigError:
    unknown columns (with close matches), unsupported constructs, operands of the wrong type,
    nested aggregates, and columns used outside the aggregates of an aggregate expression.
    """
    translator = _Translator(table, location, what)
    translator.check_aggregates(expr)
    return translator.visit(expr)


def _rule(*kinds: type[exp.Expression]) -> Callable[[_Rule], _Rule]:
    """Register the decorated function as the translation of the given sqlglot node types."""

    def register(function: _Rule) -> _Rule:
        for kind in kinds:
            _RULES[kind] = function
        return function

    return register


class _Translator:
    """The state of one translation: the table columns resolve against, and where errors point."""

    def __init__(self, table: ibis.Table, location: Location, what: str):
        self.table = table
        self.location = location
        self.prefix = f"{what}: " if what else ""

    def visit(self, node: exp.Expression) -> ir.Value:
        """Translate one node (and, through its rule, its children)."""
        rule = _RULES.get(type(node))
        if rule is None:
            raise self.error(f"unsupported SQL {_construct(node)} in '{_snippet(node)}'; supported: {SUPPORTED}")
        try:
            return rule(self, node)
        except _IBIS_TYPE_ERRORS as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise self.error(f"cannot translate '{_snippet(node)}': {detail}") from None

    def typed(self, node: exp.Expression, kind: str, context: exp.Expression) -> ir.Value:
        """Translate ``node`` and check that its type is ``kind`` (numeric, integer, string or boolean)."""
        value = self.visit(node)
        dtype = value.type()
        if dtype.is_null() or getattr(dtype, f"is_{kind}")():
            return value
        raise self.error(f"{_construct_name(context)} expects a {kind} value, got {dtype} from '{_snippet(node)}'")

    def column(self, node: exp.Column) -> ir.Column:
        """The table column a column reference names; unquoted names match case-insensitively."""
        if node.table:
            raise self.error(f"qualified column '{node.sql()}' — refer to the source's columns by name only")
        name = node.name
        if name in self.table.columns:
            return self.table[name]
        if not node.this.quoted:
            folded = [column for column in self.table.columns if column.lower() == name.lower()]
            if len(folded) == 1:
                return self.table[folded[0]]
        raise self.error(f"unknown column '{name}'{self.column_hint(name)}")

    def column_hint(self, name: str) -> str:
        by_folded_name = {column.lower(): column for column in self.table.columns}
        matches = difflib.get_close_matches(name.lower(), list(by_folded_name), n=1)
        if matches:
            return f" (did you mean '{by_folded_name[matches[0]]}'?)"
        if len(self.table.columns) <= 20:
            return f" (columns: {', '.join(self.table.columns)})"
        return ""

    def check_aggregates(self, expr: exp.Expression) -> None:
        """Reject nested aggregates, and bare columns next to aggregates (``sum(x) + y``)."""
        for aggregate in expr.find_all(exp.AggFunc):
            if any(isinstance(node, exp.AggFunc) for node in aggregate.walk() if node is not aggregate):
                raise self.error(f"aggregate functions cannot be nested: '{_snippet(aggregate)}'")
        if not any(True for _ in expr.find_all(exp.AggFunc)):
            return
        for column in expr.find_all(exp.Column):
            if column.find_ancestor(exp.AggFunc) is None:
                name = column.name
                raise self.error(f"column '{name}' is used outside an aggregate function — wrap it in one, e.g. avg({name})")

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.prefix}{message}", self.location)


def _construct(node: exp.Expression) -> str:
    """'function NAME' or 'construct NAME', for messages."""
    kind = "function" if isinstance(node, exp.Func) else "construct"
    return f"{kind} {_construct_name(node)}"


def _construct_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.upper()
    if isinstance(node, exp.Func):
        return node.sql_name()
    return _OPERATOR_NAMES.get(type(node), node.key.upper())


def _snippet(node: exp.Expression, limit: int = 80) -> str:
    text = node.sql()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Leaves: columns and literals


@_rule(exp.Column)
def _column(t: _Translator, node: exp.Column) -> ir.Value:
    return t.column(node)


@_rule(exp.Paren)
def _paren(t: _Translator, node: exp.Paren) -> ir.Value:
    return t.visit(node.this)


@_rule(exp.Literal)
def _literal(t: _Translator, node: exp.Literal) -> ir.Value:
    if node.is_string:
        return ibis.literal(node.this, type="string")
    text = node.this
    try:
        number = int(text)
    except ValueError:
        return ibis.literal(float(text), type="float64")
    if -(2**63) <= number < 2**63:
        return ibis.literal(number, type="int64")
    return ibis.literal(float(number), type="float64")


@_rule(exp.Boolean)
def _boolean(t: _Translator, node: exp.Boolean) -> ir.Value:
    return ibis.literal(bool(node.this), type="boolean")


@_rule(exp.Null)
def _null(t: _Translator, node: exp.Null) -> ir.Value:
    return ibis.null()


# --------------------------------------------------------------------------------------------
# Operators

_ARITHMETIC = {
    exp.Add: operator.add,
    exp.Sub: operator.sub,
    exp.Mul: operator.mul,
    exp.Mod: operator.mod,
    exp.Pow: operator.pow,
}
_COMPARISONS = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
}
_CONNECTIVES = {exp.And: operator.and_, exp.Or: operator.or_}
_OPERATOR_NAMES = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
    exp.Neg: "unary -",
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.And: "AND",
    exp.Or: "OR",
    exp.Not: "NOT",
}


@_rule(*_ARITHMETIC)
def _arithmetic(t: _Translator, node: exp.Binary) -> ir.Value:
    left = t.typed(node.this, "numeric", node)
    right = t.typed(node.expression, "numeric", node)
    return _ARITHMETIC[type(node)](left, right)


@_rule(exp.Div)
def _divide(t: _Translator, node: exp.Div) -> ir.Value:
    """True division as float64, NULL when dividing by zero — the same answer on every backend."""
    numerator = t.typed(node.this, "numeric", node).cast("float64")
    denominator = t.typed(node.expression, "numeric", node)
    if not _is_nonzero_number(node.expression):
        denominator = denominator.nullif(0)
    return numerator / denominator


def _is_nonzero_number(node: exp.Expression) -> bool:
    return isinstance(node, exp.Literal) and not node.is_string and float(node.this) != 0


@_rule(exp.Neg)
def _negate(t: _Translator, node: exp.Neg) -> ir.Value:
    return -t.typed(node.this, "numeric", node)


@_rule(*_COMPARISONS)
def _compare(t: _Translator, node: exp.Binary) -> ir.Value:
    return _COMPARISONS[type(node)](t.visit(node.this), t.visit(node.expression))


@_rule(exp.NullSafeEQ, exp.NullSafeNEQ)
def _distinct_from(t: _Translator, node: exp.Binary) -> ir.Value:
    same = t.visit(node.this).identical_to(t.visit(node.expression))
    return same if isinstance(node, exp.NullSafeEQ) else ~same


@_rule(*_CONNECTIVES)
def _connective(t: _Translator, node: exp.Binary) -> ir.Value:
    left = t.typed(node.this, "boolean", node)
    right = t.typed(node.expression, "boolean", node)
    return _CONNECTIVES[type(node)](left, right)


@_rule(exp.Not)
def _not(t: _Translator, node: exp.Not) -> ir.Value:
    return ~t.typed(node.this, "boolean", node)


# --------------------------------------------------------------------------------------------
# Predicates


@_rule(exp.In)
def _in(t: _Translator, node: exp.In) -> ir.Value:
    if not node.expressions or any(node.args.get(key) for key in ("query", "unnest", "field")):
        raise t.error(f"IN supports a list of values only, e.g. region IN ('eu', 'us'): '{_snippet(node)}'")
    return t.visit(node.this).isin([t.visit(option) for option in node.expressions])


@_rule(exp.Between)
def _between(t: _Translator, node: exp.Between) -> ir.Value:
    if node.args.get("symmetric"):
        raise t.error(f"BETWEEN SYMMETRIC is not supported: '{_snippet(node)}'")
    return t.visit(node.this).between(t.visit(node.args["low"]), t.visit(node.args["high"]))


@_rule(exp.Is)
def _is(t: _Translator, node: exp.Is) -> ir.Value:
    target = node.expression
    if isinstance(target, exp.Null):
        return t.visit(node.this).isnull()
    if isinstance(target, exp.Boolean):
        # x IS TRUE is never NULL: a NULL x is simply not TRUE.
        value = t.typed(node.this, "boolean", node)
        condition = value if target.this else ~value
        return condition.fill_null(False)
    raise t.error(f"IS supports NULL, TRUE and FALSE only: '{_snippet(node)}'")


@_rule(exp.Like, exp.ILike)
def _like(t: _Translator, node: exp.Binary) -> ir.Value:
    value = t.typed(node.this, "string", node)
    pattern = t.typed(node.expression, "string", node)
    return value.like(pattern) if isinstance(node, exp.Like) else value.ilike(pattern)


# --------------------------------------------------------------------------------------------
# Conditionals


@_rule(exp.Case)
def _case(t: _Translator, node: exp.Case) -> ir.Value:
    branches = [(t.visit(branch.this), t.visit(branch.args["true"])) for branch in node.args["ifs"]]
    default = node.args.get("default")
    otherwise = t.visit(default) if default is not None else None
    if node.this is not None:  # simple CASE: CASE x WHEN value THEN result ...
        return t.visit(node.this).cases(*branches, else_=otherwise)
    return ibis.cases(*branches, else_=otherwise)


@_rule(exp.If)
def _if(t: _Translator, node: exp.If) -> ir.Value:
    otherwise = node.args.get("false")
    return ibis.ifelse(
        t.typed(node.this, "boolean", node),
        t.visit(node.args["true"]),
        t.visit(otherwise) if otherwise is not None else ibis.null(),
    )


@_rule(exp.Coalesce)
def _coalesce(t: _Translator, node: exp.Coalesce) -> ir.Value:
    return ibis.coalesce(t.visit(node.this), *(t.visit(value) for value in node.expressions))


@_rule(exp.Nullif)
def _nullif(t: _Translator, node: exp.Nullif) -> ir.Value:
    return t.visit(node.this).nullif(t.visit(node.expression))


# --------------------------------------------------------------------------------------------
# Casts

_CAST_TYPES = {
    exp.DataType.Type.TINYINT: dt.int8,
    exp.DataType.Type.SMALLINT: dt.int16,
    exp.DataType.Type.INT: dt.int32,
    exp.DataType.Type.BIGINT: dt.int64,
    # FLOAT is double precision in PostgreSQL, Snowflake and BigQuery; sqlglot reads REAL as FLOAT too.
    exp.DataType.Type.FLOAT: dt.float64,
    exp.DataType.Type.DOUBLE: dt.float64,
    exp.DataType.Type.VARCHAR: dt.string,
    exp.DataType.Type.NVARCHAR: dt.string,
    exp.DataType.Type.CHAR: dt.string,
    exp.DataType.Type.NCHAR: dt.string,
    exp.DataType.Type.TEXT: dt.string,
    exp.DataType.Type.BOOLEAN: dt.boolean,
    exp.DataType.Type.DATE: dt.date,
    exp.DataType.Type.TIMESTAMP: dt.timestamp,
    exp.DataType.Type.TIMESTAMPTZ: dt.Timestamp(timezone="UTC"),
}


@_rule(exp.Cast, exp.TryCast)
def _cast(t: _Translator, node: exp.Cast) -> ir.Value:
    if node.args.get("format") or node.args.get("default"):
        raise t.error(f"CAST supports plain 'CAST(x AS type)' only: '{_snippet(node)}'")
    target = _ibis_type(t, node.args["to"])
    value = t.visit(node.this)
    return value.try_cast(target) if isinstance(node, exp.TryCast) else value.cast(target)


def _ibis_type(t: _Translator, data_type: exp.DataType) -> dt.DataType:
    """The ibis type a SQL type name means; only portable types are accepted."""
    if data_type.this == exp.DataType.Type.DECIMAL:
        params = [int(param.this.this) for param in data_type.expressions]
        return dt.Decimal(*params) if params else dt.Decimal(38, 9)
    target = _CAST_TYPES.get(data_type.this)
    if target is None:
        raise t.error(
            f"cannot cast to {data_type.sql()}; use one of: SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL(p, s), "
            "VARCHAR, BOOLEAN, DATE, TIMESTAMP, TIMESTAMPTZ"
        )
    return target


# --------------------------------------------------------------------------------------------
# Scalar functions

_NUMERIC_FUNCTIONS = {
    exp.Abs: lambda x: x.abs(),
    exp.Ln: lambda x: x.ln(),
    exp.Exp: lambda x: x.exp(),
    exp.Sqrt: lambda x: x.sqrt(),
}
_STRING_FUNCTIONS = {
    exp.Lower: lambda s: s.lower(),
    exp.Upper: lambda s: s.upper(),
    exp.Length: lambda s: s.length(),
}
_TRIMS = {None: "strip", "BOTH": "strip", "LEADING": "lstrip", "TRAILING": "rstrip"}


@_rule(*_NUMERIC_FUNCTIONS)
def _numeric_function(t: _Translator, node: exp.Func) -> ir.Value:
    return _NUMERIC_FUNCTIONS[type(node)](t.typed(node.this, "numeric", node))


@_rule(*_STRING_FUNCTIONS)
def _string_function(t: _Translator, node: exp.Func) -> ir.Value:
    return _STRING_FUNCTIONS[type(node)](t.typed(node.this, "string", node))


@_rule(exp.Round)
def _round(t: _Translator, node: exp.Round) -> ir.Value:
    """ROUND(x, d); ROUND(x) and ROUND(x, 0) give an integer, as ibis defines rounding to units."""
    if node.args.get("truncate"):
        raise t.error(f"ROUND takes a value and a number of digits only: '{_snippet(node)}'")
    value = t.typed(node.this, "numeric", node)
    digits = node.args.get("decimals")
    return value.round(t.typed(digits, "integer", node)) if digits is not None else value.round()


@_rule(exp.Log)
def _log(t: _Translator, node: exp.Log) -> ir.Value:
    if node.expression is None:
        return t.typed(node.this, "numeric", node).log10()
    base = t.typed(node.this, "numeric", node)
    return t.typed(node.expression, "numeric", node).log(base)


@_rule(exp.Least, exp.Greatest)
def _extreme(t: _Translator, node: exp.Func) -> ir.Value:
    values = [t.visit(node.this), *(t.visit(value) for value in node.expressions)]
    return ibis.least(*values) if isinstance(node, exp.Least) else ibis.greatest(*values)


@_rule(exp.Trim)
def _trim(t: _Translator, node: exp.Trim) -> ir.Value:
    """TRIM/LTRIM/RTRIM of whitespace (ibis strips spaces, tabs and line breaks)."""
    if node.expression is not None or node.args.get("collation"):
        raise t.error(f"TRIM removes whitespace only; trimming other characters is not supported: '{_snippet(node)}'")
    position = node.args.get("position")
    method = _TRIMS[position.upper() if isinstance(position, str) else None]
    return getattr(t.typed(node.this, "string", node), method)()


# --------------------------------------------------------------------------------------------
# Aggregates

_REDUCTIONS = {
    exp.Sum: lambda x: x.sum(),
    exp.Avg: lambda x: x.mean(),
    exp.Stddev: lambda x: x.std(how="sample"),
    exp.StddevSamp: lambda x: x.std(how="sample"),
    exp.StddevPop: lambda x: x.std(how="pop"),
    exp.Variance: lambda x: x.var(how="sample"),
    exp.VariancePop: lambda x: x.var(how="pop"),
}
_EXTREMA = {exp.Min: lambda x: x.min(), exp.Max: lambda x: x.max()}


@_rule(exp.Count)
def _count(t: _Translator, node: exp.Count) -> ir.Value:
    argument = node.this
    if node.expressions:
        raise t.error(f"COUNT takes one argument: '{_snippet(node)}'")
    if argument is None or isinstance(argument, exp.Star) or _is_non_null_literal(argument):
        return t.table.count()
    if isinstance(argument, exp.Distinct):
        if len(argument.expressions) != 1:
            raise t.error(f"COUNT(DISTINCT ...) takes one column: '{_snippet(node)}'")
        return t.visit(argument.expressions[0]).nunique()
    return t.visit(argument).count()


def _is_non_null_literal(node: exp.Expression) -> bool:
    return isinstance(node, (exp.Literal, exp.Boolean))


@_rule(*_REDUCTIONS)
def _reduction(t: _Translator, node: exp.AggFunc) -> ir.Value:
    value = _aggregate_argument(t, node)
    if value.type().is_boolean():
        # Count TRUE as 1: PostgreSQL has no AVG(boolean), and the share of TRUE is what is meant.
        value = value.cast("int64")
    return _REDUCTIONS[type(node)](value)


@_rule(*_EXTREMA)
def _extremum(t: _Translator, node: exp.AggFunc) -> ir.Value:
    return _EXTREMA[type(node)](_aggregate_argument(t, node))


def _aggregate_argument(t: _Translator, node: exp.AggFunc) -> ir.Value:
    """The one column an aggregate other than COUNT reads."""
    name = _construct_name(node)
    if isinstance(node.this, exp.Distinct):
        raise t.error(f"DISTINCT is supported in COUNT(DISTINCT x) only, not in {name}: '{_snippet(node)}'")
    if node.args.get("expressions"):
        raise t.error(f"{name} takes one argument: '{_snippet(node)}'")
    value = t.visit(node.this)
    if not isinstance(value, ir.Column):
        constant = _snippet(node.this)
        raise t.error(f"{name} needs a column to aggregate, got the constant '{constant}' — use COUNT(*) to count rows")
    return value
