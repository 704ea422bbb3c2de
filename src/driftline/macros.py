"""Macros and user SQL: parsed with sqlglot, expanded on the syntax tree, never pasted as text.

A macro file holds reusable, parameterised SQL expressions::

    macros:
      conversion_rate:
        args: [flag]
        sql: avg(case when {flag} then 1.0 else 0.0 end)

User SQL (a ``source.where`` predicate, a custom metric's ``sql:``) goes through
:func:`parse_expression`, which accepts exactly one SQL expression and replaces every macro call by
the macro's body, with the call's arguments substituted as parsed sub-trees:

>>> here = Location("macros/kpi.yml", 3, 5)
>>> rate = parse_macro("conversion_rate", ["flag"], "avg(case when {flag} then 1.0 else 0.0 end)", location=here)
>>> macros = {"conversion_rate": rate}
>>> tree = parse_expression("conversion_rate(a = 1 or b = 1)", macros=macros, location=here, what="sql")
>>> tree.sql()
'AVG(CASE WHEN (a = 1 OR b = 1) THEN 1.0 ELSE 0.0 END)'

SQL is read in sqlglot's generic dialect: the neutral, mostly ANSI grammar that no single warehouse
owns. What a user writes there means the same thing on every backend driftline compiles for, and
dialect-only syntax (DuckDB's ``//``, PostgreSQL's ``^`` for powers) is rejected instead of
silently meaning something else elsewhere.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlglot
import yaml
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from driftline.errors import ConfigError, ConfigErrors, Location
from driftline.spec.yaml_source import compose_file

READ_DIALECT = ""
"""The sqlglot dialect user SQL is parsed in: "" is sqlglot's generic dialect."""

MACRO_KEYS = ("args", "sql", "description")

_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}")
_PLACEHOLDER_PREFIX = "__driftline_arg_"


@dataclass(frozen=True)
class Macro:
    """One macro: a name, its argument names, and its body parsed once.

    In ``body`` each argument ``{flag}`` stands as the column ``__driftline_arg_flag``; expansion
    replaces those columns by the call's arguments.
    """

    name: str
    args: tuple[str, ...]
    body: exp.Expression
    location: Location


# --------------------------------------------------------------------------------------------
# Loading macro files


def load_macros(paths: Iterable[Path]) -> dict[str, Macro]:
    """Load every macro of the given YAML files, checking each one completely.

    Raises :class:`ConfigErrors` (a :class:`ConfigError`) listing every problem, one per line, each
    with the file and line of the bad macro: bad names or keys, duplicates across files, bodies that are not a
    single expression, unused or undeclared ``{arg}`` placeholders, calls of unknown macros, wrong
    argument counts and cycles.
    """
    macros: dict[str, Macro] = {}
    errors: list[ConfigError] = []
    for path in paths:
        for macro in _collect(errors, _macros_in_file, Path(path)) or []:
            if macro.name in macros:
                errors.append(_duplicate_error(macro, macros[macro.name].location))
            else:
                macros[macro.name] = macro
    if not errors:  # with a macro missing, its callers would report misleading errors
        for macro in macros.values():
            _collect(errors, _check_calls, macro, macros)
    if errors:
        raise ConfigErrors(errors)
    return macros


def _collect(errors: list[ConfigError], function, *args):
    """Call ``function``; record a ConfigError it raises instead of stopping at the first one."""
    try:
        return function(*args)
    except ConfigErrors as many:
        errors.extend(many.errors)
    except ConfigError as error:
        errors.append(error)
    return None


def _macros_in_file(path: Path) -> list[Macro]:
    """Parse one macro file into macros, collecting every problem in it."""
    root = _compose(path)
    if root is None:
        return []
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError("expected a mapping with a top-level 'macros:' key", _location(path, root))
    macros: list[Macro] = []
    errors: list[ConfigError] = []
    for key, value in root.value:
        if key.value != "macros":
            errors.append(_unknown_key_error(key, ("macros",), path))
        elif not _is_null(value):
            macros.extend(_collect(errors, _macros_in_mapping, value, path) or [])
    if errors:
        raise ConfigErrors(errors)
    return macros


def _macros_in_mapping(node: yaml.Node, path: Path) -> list[Macro]:
    """The macros of a ``macros:`` mapping, collecting every problem in it."""
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError("macros: expected a mapping of macro name to {args, sql}", _location(path, node))
    errors: list[ConfigError] = []
    macros = [_collect(errors, _macro_from_nodes, name, value, path) for name, value in node.value]
    if errors:
        raise ConfigErrors(errors)
    return [macro for macro in macros if macro is not None]


def _compose(path: Path) -> yaml.Node | None:
    """Read a YAML file into its node tree, which keeps the line of every value (within the
    limits every driftline YAML file has: size, encoding, depth, no aliases)."""
    return compose_file(path)


def _macro_from_nodes(name_node: yaml.Node, value: yaml.Node, path: Path) -> Macro:
    """Build one macro from its ``name: {args, sql}`` entry."""
    name = str(name_node.value) if isinstance(name_node, yaml.ScalarNode) else ""
    location = _location(path, name_node)
    _check_name(name, location)
    if not isinstance(value, yaml.MappingNode):
        raise ConfigError(f"macro '{name}': expected a mapping with keys args and sql", location)
    fields: dict[str, yaml.Node] = {}
    for key, field in value.value:
        if key.value not in MACRO_KEYS:
            raise _unknown_key_error(key, MACRO_KEYS, path, prefix=f"macro '{name}': ")
        fields[key.value] = field
    args = _args_from_node(name, fields.get("args"), path)
    sql_node = fields.get("sql")
    if sql_node is None or _is_null(sql_node) or not isinstance(sql_node, yaml.ScalarNode):
        raise ConfigError(f"macro '{name}': expected key 'sql' with a SQL expression", location)
    macro = parse_macro(name, args, str(sql_node.value), location=_location(path, sql_node))
    return Macro(name=macro.name, args=macro.args, body=macro.body, location=location)


def parse_macro(name: str, args: Sequence[str], sql: str, *, location: Location) -> Macro:
    """Check and parse one macro definition; ``location`` is where its ``sql`` is written."""
    _check_name(name, location)
    for index, arg in enumerate(args):
        if not _ARG_NAME.match(arg):
            raise ConfigError(f"macro '{name}': bad argument name '{arg}': use letters, digits and _", location)
        if arg in args[:index]:
            raise ConfigError(f"macro '{name}': argument '{arg}' is listed twice", location)
    body = _parse_body(name, sql, tuple(args), location)
    return Macro(name=name, args=tuple(args), body=body, location=location)


def _check_name(name: str, location: Location) -> None:
    """A macro name is lowercase snake case, and not a name SQL already reads as a function or keyword."""
    if not _NAME.match(name):
        raise ConfigError(
            f"bad macro name '{name}': use lowercase letters, digits and _, not starting with a digit", location
        )
    try:
        with _quiet_sqlglot():  # a keyword (`comment`) makes sqlglot log a warning before it answers
            call = sqlglot.parse_one(f"{name}(x)", read=READ_DIALECT)
    except (ParseError, TokenError):
        call = None
    if not isinstance(call, exp.Anonymous) or call.name != name:
        raise ConfigError(f"macro name '{name}' is already a SQL function or keyword — choose another name", location)


@contextlib.contextmanager
def _quiet_sqlglot():
    """sqlglot's own warnings off: what they say reaches the user as driftline's error instead."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _args_from_node(name: str, node: yaml.Node | None, path: Path) -> tuple[str, ...]:
    """The macro's argument names, in call order (no ``args`` key: no arguments)."""
    if node is None or _is_null(node):
        return ()
    if not isinstance(node, yaml.SequenceNode):
        message = f"macro '{name}': args: expected a list of argument names, e.g. [flag]"
        raise ConfigError(message, _location(path, node))
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode):
            message = f"macro '{name}': args: expected argument names, found a nested value"
            raise ConfigError(message, _location(path, item))
    return tuple(str(item.value) for item in node.value)


def _parse_body(name: str, sql: str, args: tuple[str, ...], location: Location) -> exp.Expression:
    """Parse a macro body, its ``{arg}`` placeholders standing as placeholder columns."""
    what = f"macro '{name}'"
    used = _PLACEHOLDER.findall(sql)
    for arg in used:
        if arg not in args:
            declared = ", ".join(args) or "none"
            message = f"{what}: sql uses {{{arg}}}, which is not in args ({declared}) — add it to args"
            raise ConfigError(message, location)
    for arg in args:
        if arg not in used:
            raise ConfigError(f"{what}: argument '{arg}' is declared in args but sql never uses {{{arg}}}", location)
    body = _parse_single(_PLACEHOLDER.sub(lambda m: _placeholder(m.group(1)), sql), location, what)
    _check_placeholders_stand_for_values(body, used, location, what)
    return body


def _check_placeholders_stand_for_values(body: exp.Expression, used: list[str], location: Location, what: str) -> None:
    """Each ``{arg}`` must sit where a value goes: not inside a string, a name or a type."""
    as_values = [column.name for column in body.find_all(exp.Column) if not column.table]
    for arg in set(used):
        if used.count(arg) != as_values.count(_placeholder(arg)):
            message = f"{what}: {{{arg}}} must stand where a value goes, not inside a string, a name or a type"
            raise ConfigError(message, location)


def _check_calls(macro: Macro, macros: Mapping[str, Macro]) -> None:
    """Expand a macro's body once, so unknown macros, wrong arity and cycles surface at load time."""
    _expand(macro.body, macros, macro.location, f"macro '{macro.name}'", stack=(macro.name,))


def _placeholder(arg: str) -> str:
    return f"{_PLACEHOLDER_PREFIX}{arg}"


def _location(path: Path, node: yaml.Node) -> Location:
    return Location(str(path), node.start_mark.line + 1, node.start_mark.column + 1)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _duplicate_error(macro: Macro, first: Location) -> ConfigError:
    return ConfigError(f"duplicate macro '{macro.name}' (first defined at {first}) — rename one", macro.location)


def _unknown_key_error(key: yaml.Node, known: tuple[str, ...], path: Path, prefix: str = "") -> ConfigError:
    return ConfigError(
        f"{prefix}unknown key '{key.value}'{_did_you_mean(str(key.value), known)}"
        f" — expected one of: {', '.join(known)}",
        _location(path, key),
    )


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


# --------------------------------------------------------------------------------------------
# Parsing user SQL


def parse_expression(sql: str, *, macros: Mapping[str, Macro], location: Location, what: str) -> exp.Expression:
    """Parse exactly one SQL expression and expand every macro call in it.

    ``what`` names the key being parsed (``where``, ``metric conversion_rate``); it starts every
    error message. Statements, ``;``, subqueries, window functions and aliases are rejected.
    """
    expression = _parse_single(sql, location, what)
    return _expand(expression, macros, location, what, stack=())


def _parse_single(sql: str, location: Location, what: str) -> exp.Expression:
    """Parse ``sql`` as one value expression, or raise a ConfigError saying what else it is."""
    if not sql.strip():
        raise ConfigError(f"{what}: expected a SQL expression, found an empty string", location)
    _reject_semicolon(sql, location, what)
    try:
        statements = sqlglot.parse(sql, read=READ_DIALECT)
    except ParseError as error:
        raise ConfigError(f"{what}: invalid SQL: {_describe_parse_error(error)}", location) from None
    expression = statements[0]
    if expression is None:
        raise ConfigError(f"{what}: expected a SQL expression, found only a comment", location)
    if isinstance(expression, exp.Subquery):
        raise _subquery_error(location, what)
    if isinstance(expression, exp.Alias):
        message = f"{what}: unexpected alias '{expression.alias}' — remove it (or add the missing operator before it)"
        raise ConfigError(message, location)
    if not isinstance(expression, exp.Condition):
        statement = f"{_article(expression.key)} {expression.key.upper()} statement"
        message = f"{what}: expected a single SQL expression, found {statement} — write only the expression"
        raise ConfigError(message, location)
    _reject_forbidden_nodes(expression, location, what)
    return expression


# Nodes that change the warehouse: a source query that holds one of them is not a read.
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.TruncateTable, exp.Command)
_WRITE_KEYWORDS = {"INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "GRANT", "REVOKE", "COPY", "CALL", "EXECUTE", "ATTACH", "DETACH"}


# The sqlglot dialect a warehouse's own SQL is read in, by ibis backend name.
_SQLGLOT_DIALECTS = {"pyspark": "spark", "mssql": "tsql"}


def check_source_query(sql: str, *, location: Location, what: str = "source.sql", backend: str | None = None) -> None:
    """``sql`` must be one query that only reads tables (SELECT, WITH … SELECT, UNION …).

    Checked before the warehouse sees it, parsed in the warehouse's own dialect (``backend``, an
    ibis backend name): the warehouse would run a second statement after a ``;``, PostgreSQL runs
    a DELETE hidden in a WITH clause, and a SELECT can call functions that read files or change
    settings (see :mod:`driftline.read_only_sql`). SQL that cannot be parsed cannot be checked,
    so it is refused.
    """
    from driftline.read_only_sql import check_reads_tables_only

    if not sql.strip():
        raise ConfigError(f"{what}: expected a SELECT query, found an empty string", location)
    _reject_semicolon(sql, location, what, kind="query")
    dialect = _SQLGLOT_DIALECTS.get(backend or "", backend or READ_DIALECT)
    try:
        statement = sqlglot.parse_one(sql, read=dialect)
    except (ParseError, TokenError) as error:
        _reject_write_keywords(sql, location, what)
        detail = _describe_parse_error(error) if isinstance(error, ParseError) else str(error).splitlines()[0]
        message = f"{what}: cannot read this query to check it only reads tables ({detail}); write it as a plain SELECT"
        raise ConfigError(message, location) from None
    if not isinstance(statement, exp.Query):
        raise ConfigError(f"{what}: expected a SELECT query, found {_article(statement.key)} {statement.key.upper()} statement", location)
    writes = next((node for node in statement.walk() if isinstance(node, _WRITES)), None)
    if writes is not None:
        raise ConfigError(f"{what}: a source query may only read, found {writes.key.upper()} in it — remove it", location)
    check_reads_tables_only(statement, location=location, what=what)


def _reject_write_keywords(sql: str, location: Location, what: str) -> None:
    for token in sqlglot.tokenize(sql, read=READ_DIALECT):
        if token.token_type != TokenType.STRING and token.text.upper() in _WRITE_KEYWORDS:
            raise ConfigError(f"{what}: a source query may only read, found {token.text.upper()} in it — remove it", location)


def _reject_semicolon(sql: str, location: Location, what: str, kind: str = "expression") -> None:
    """A ``;`` ends a statement; in an expression (or the one query) it can only smuggle in a second one."""
    try:
        tokens = sqlglot.tokenize(sql, read=READ_DIALECT)
    except TokenError as error:
        raise ConfigError(f"{what}: invalid SQL: {str(error).splitlines()[0]} (an unclosed quote?)", location) from None
    for index, token in enumerate(tokens):
        if token.token_type == TokenType.SEMICOLON:
            rest = tokens[index + 1 :]
            found = f"a statement ';' followed by '{rest[0].text}'" if rest else "a trailing ';'"
            raise ConfigError(
                f"{what}: expected a single SQL {kind}, found {found} — remove everything after the {kind}",
                location,
            )


def _subquery_error(location: Location, what: str) -> ConfigError:
    return ConfigError(f"{what}: subqueries are not allowed — use a plain expression over the source's columns", location)


def _describe_parse_error(error: ParseError) -> str:
    """One line from sqlglot's error: what was expected, and the text where parsing stopped."""
    if not error.errors:
        return str(error).splitlines()[0]
    first = error.errors[0]
    description = re.sub(r" for <class '[\w.]+'>", "", first.get("description") or "syntax error")
    near = (first.get("highlight") or "").strip()
    return f"{description} near '{near}'" if near else description


def _reject_forbidden_nodes(expression: exp.Expression, location: Location, what: str) -> None:
    """Reject constructs that parse as expressions but are not allowed in a monitor's SQL."""
    for node in expression.walk():
        if isinstance(node, (exp.Query, exp.Exists)):
            raise _subquery_error(location, what)
        if isinstance(node, exp.Window):
            message = f"{what}: window functions (OVER ...) are not allowed — use a plain expression or aggregate"
            raise ConfigError(message, location)
        if isinstance(node, exp.Alias):
            raise ConfigError(f"{what}: aliases ('AS {node.alias}') are not allowed — remove them", location)


# --------------------------------------------------------------------------------------------
# Macro expansion


def _expand(
    expression: exp.Expression, macros: Mapping[str, Macro], location: Location, what: str, stack: tuple[str, ...]
) -> exp.Expression:
    """Replace every macro call in ``expression`` (a copy) by the macro's expanded body.

    ``stack`` holds the macros being expanded around this one, to detect cycles.
    """

    def expand_call(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous):
            return _expand_call(node, macros, location, what, stack)
        return node

    return expression.transform(expand_call)


def _expand_call(
    call: exp.Anonymous, macros: Mapping[str, Macro], location: Location, what: str, stack: tuple[str, ...]
) -> exp.Expression:
    """Expand one call ``name(arg, ...)`` of a macro."""
    name = call.name.lower()
    macro = macros.get(name)
    if macro is None:
        raise ConfigError(f"{what}: {_unknown_macro_message(call.name, macros)}", location)
    if name in stack:
        cycle = " -> ".join((*stack[stack.index(name) :], name))
        message = f"{what}: macro cycle {cycle} — a macro cannot call itself, directly or through others"
        raise ConfigError(message, location)
    arguments = call.expressions
    if len(arguments) != len(macro.args):
        raise ConfigError(
            f"{what}: macro '{name}' takes {_count(len(macro.args), 'argument')} ({', '.join(macro.args)}), "
            f"got {len(arguments)}",
            location,
        )
    bindings = {
        _placeholder(arg): _expand(value, macros, location, what, stack) for arg, value in zip(macro.args, arguments)
    }
    body = _substitute(macro.body, bindings)
    return _expand(body, macros, location, what, (*stack, name))


def _substitute(body: exp.Expression, bindings: Mapping[str, exp.Expression]) -> exp.Expression:
    """A copy of ``body`` with each placeholder column replaced by its bound argument."""

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and not node.table and node.name in bindings:
            return _parenthesize(bindings[node.name].copy())
        return node

    return body.transform(replace)


def _parenthesize(expression: exp.Expression) -> exp.Expression:
    """Wrap a compound argument in parentheses, so the tree prints back with the precedence it has.

    The tree itself is already right (``NOT {flag}`` with ``a OR b`` negates the whole OR); the
    parentheses keep any SQL text generated from it, e.g. in ``driftline compile``, right too.
    """
    atomic = (exp.Column, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Func)
    if isinstance(expression, atomic) and not isinstance(expression, exp.Binary):
        return expression
    return exp.Paren(this=expression)


def _unknown_macro_message(name: str, macros: Mapping[str, Macro]) -> str:
    hint = _did_you_mean(name.lower(), macros)
    if hint:
        return f"unknown macro '{name}'{hint}"
    return f"unknown macro or function '{name}' — define it in macros/*.yml or use a supported SQL function"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# Questions about a parsed expression


def referenced_columns(expr: exp.Expression) -> set[str]:
    """The names of the columns an expression reads, as written."""
    return {column.name for column in expr.find_all(exp.Column)}


def contains_aggregate(expr: exp.Expression) -> bool:
    """Whether the expression aggregates rows (``avg(x)``, ``count(*)``, ...)."""
    return any(True for _ in expr.find_all(exp.AggFunc))
