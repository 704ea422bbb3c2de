"""The command line: parses arguments, calls the API, prints results, sets the exit code.

Exit codes (SPEC §4): 0 every check ok, 1 some warn, 2 some fail, 3 driftline could not run
(a usage error included). Errors print one line per problem, ``path:line:column: message``;
``--debug`` adds the traceback above them and keeps the exit code.

``--json`` makes run, backfill, validate and compile write one JSON document to stdout and
everything meant for people to stderr; progress and the summary table always go to stderr.

The API (and with it ibis and pandas) is imported inside the handlers that need it: ``--help``,
``--version`` and ``schema`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
import traceback
from collections import Counter
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from driftline import __version__
from driftline.errors import DriftlineError

if TYPE_CHECKING:
    from driftline import api

# SPEC §4's exit codes, as driftline.api defines them (tests check they agree); importing the
# API here would cost every command, --help included, the seconds ibis and pandas take.
EXIT_OK, EXIT_WARN, EXIT_FAIL, EXIT_ERROR = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    with contextlib.redirect_stdout(_Output(sys.stdout)), contextlib.redirect_stderr(_Output(sys.stderr)):
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # now, while a reader that has gone is still taken care of


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = _parse(parser, argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.handler(args)
    except DriftlineError as error:
        _traceback_if(args.debug)
        print(str(error), file=sys.stderr)
        _json_errors_if(args, _problems(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug or an unforeseen failure: still one line, no traceback (SPEC §4)
        _traceback_if(args.debug)
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        hint = "" if args.debug else " (rerun with --debug for the traceback)"
        print(f"driftline {args.command}: unexpected error: {type(error).__name__}: {first}{hint}", file=sys.stderr)
        _json_errors_if(args, [_problem(None, f"unexpected error: {type(error).__name__}: {first}")])
        return EXIT_ERROR


def _traceback_if(debug: bool) -> None:
    """With --debug, the traceback of the error being handled, on stderr. It only adds to what
    is printed: re-raising would make Python exit 1, which reads as "some check warns"."""
    if debug:
        traceback.print_exc(file=sys.stderr)


class _Output:
    """A standard stream that outlives its reader: once the reader has gone (``driftline run |
    head -1``), the rest of the output is dropped instead of raising BrokenPipeError, so the
    command finishes its work and exits with its own code (the Python docs' "Note on SIGPIPE")."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        # What is still buffered would raise again at the next flush, at exit at the latest.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, self._stream.fileno())
        os.close(devnull)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, the code SPEC §4 gives a failing check: exit 3 instead,
    with a line that says where to look."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the command's own parser, whose usage and --help have the options
        command_parser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="driftline", description="Monitor ML models inside the warehouse.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"driftline {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        sub.set_defaults(handler=handler, command_parser=sub)
        return sub

    init = command("init", _init, "scaffold a project with an example monitor")
    init.add_argument("dir", nargs="?", default=".")

    validate = command("validate", _validate, "parse and check every monitor against the warehouse schema")
    _project_options(validate)
    _json_option(validate)

    compile_ = command("compile", _compile, "print the SQL a run executes")
    _project_options(compile_)
    _json_option(compile_)
    compile_.add_argument("--monitor", help="only this monitor")
    compile_.add_argument("--dialect", help="duckdb, postgres, snowflake, bigquery, trino, databricks, clickhouse, pyspark")
    compile_.add_argument("--at", help="'now' for picking the window (ISO-8601, UTC if no offset)")

    run = command("run", _run, "evaluate every due window not yet completed")
    _project_options(run)
    _run_output_options(run)
    run.add_argument("--monitor", action="append", dest="monitors", help="only this monitor (repeatable)")
    run.add_argument("--at", help="'now' (ISO-8601, UTC if no offset)")
    run.add_argument("--no-notify", action="store_true", help="store alerts but send nothing")
    run.add_argument("--dry-run", action="store_true", help=_DRY_RUN_HELP)
    run.add_argument("--wait", type=_seconds, metavar="SECONDS", help=_WAIT_HELP)

    backfill = command("backfill", _backfill, "evaluate every whole window between --start and --end")
    _project_options(backfill)
    _run_output_options(backfill)
    backfill.add_argument("--start", required=True)
    backfill.add_argument("--end", required=True)
    backfill.add_argument("--monitor", action="append", dest="monitors")
    backfill.add_argument("--at", help="'now' (ISO-8601); windows after it are not due")
    # Re-evaluated old windows are old news: backfill sends nothing unless asked. --no-notify says
    # so explicitly, as for run, so one command line works for both.
    alerts = backfill.add_mutually_exclusive_group()
    alerts.add_argument("--notify", action="store_true", help="also send alerts")
    alerts.add_argument("--no-notify", dest="notify", action="store_false", help="store alerts but send nothing (the default)")
    backfill.set_defaults(notify=False)
    backfill.add_argument("--dry-run", action="store_true", help=_DRY_RUN_HELP)
    backfill.add_argument("--wait", type=_seconds, metavar="SECONDS", help=_WAIT_HELP)
    backfill.add_argument("--max-windows", type=int, metavar="N", help="evaluate up to N windows in all (default 1000); more is refused before anything is written")

    report = command("report", _report, "write a static HTML report from the result tables")
    _project_options(report)
    report.add_argument("--out", default="report.html", help="the HTML file to write; missing directories are created")

    dbt_sources = command("dbt-sources", _dbt_sources, "write a dbt sources file describing driftline's result tables and views")
    _project_options(dbt_sources)
    dbt_sources.add_argument("--out", metavar="FILE", help="the file to write (default: standard output)")
    dbt_sources.add_argument("--schema", help="the schema of the result tables (default: results.schema, else the connection's default)")

    demo = command("demo", _demo, "build a synthetic warehouse and run the example monitors over it")
    demo.add_argument("--dir", default="demo")
    demo.add_argument("--rows", type=int, default=1_000_000)

    schema = command("schema", _schema, "print the JSON Schema of the monitor YAML (editors: see schemas/)")
    which = schema.add_mutually_exclusive_group()
    which.add_argument("--project", action="store_true", help="the schema of driftline_project.yml instead")
    which.add_argument("--macros", action="store_true", help="the schema of macros/*.yml instead")
    parser.set_defaults(debug=False)
    return parser


_DRY_RUN_HELP = "print the alert messages instead of sending them; they stay pending for the next run"
_WAIT_HELP = "wait up to SECONDS in all for monitors another driftline is evaluating (default: skip them)"


def _seconds(text: str) -> float:
    """``--wait``'s value: a number of seconds, 0 or more (argparse reports the error)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, got {text!r}")
    return value


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="write one JSON document to stdout (SPEC §4), messages to stderr")


def _run_output_options(parser: argparse.ArgumentParser) -> None:
    _json_option(parser)
    parser.add_argument("--fail-on", choices=FAIL_ON, default="warn",
                        help="the check status from which the exit code is not 0: warn (exit 1 on warn, 2 on fail; the default), "
                        "fail (warn exits 0), never (0 unless driftline could not run, which is 3)")


def _project_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", default=".", help="project directory (default: .)")
    parser.add_argument("--connection", help="warehouse URL, overrides the project and DRIFTLINE_CONNECTION")


# -- handlers -----------------------------------------------------------------------------------


def _init(args) -> int:
    from driftline.scaffold import scaffold

    for path in scaffold(Path(args.dir)):
        print(f"created {path}")
    return EXIT_OK


def _validate(args) -> int:
    from driftline import api

    names = api.validate(args.project, args.connection)
    if args.json:
        print_json({"valid": True, "monitors": names})
    message = f"ok: {len(names)} monitor{'s' if len(names) != 1 else ''} valid ({', '.join(names)})"
    print(message, file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def _compile(args) -> int:
    from driftline import api

    if not args.json:
        print(api.compile(args.project, args.monitor, args.dialect, args.connection, args.at), end="")
        return EXIT_OK
    print_json({"monitors": [_compiled_json(monitor) for monitor in _compiled(args)]})
    return EXIT_OK


def _compiled(args) -> list:
    """What api.compile renders as text, as data: the same workspace, dialect and "now"."""
    from driftline.api import _moment
    from driftline.compilation import compiled_monitors
    from driftline.plan.profile import now_utc
    from driftline.workspace import Workspace

    now = _moment(args.at, "at") if args.at is not None else now_utc()
    workspace = Workspace.open(args.project, args.connection)
    names = [args.monitor] if args.monitor else None
    return compiled_monitors(workspace, names, args.dialect or workspace.con.name, now)


def _run(args) -> int:
    from driftline import api

    with WindowProgress() as progress:
        summary = api.run(
            args.project, args.at, args.monitors, args.connection, notify=not args.no_notify, dry_run=args.dry_run, wait=args.wait,
            progress=progress,
        )
    print_skipped(summary, "run")
    return _finish(args, summary)


def _backfill(args) -> int:
    from driftline import api

    with WindowProgress() as progress:
        summary = api.backfill(
            args.start, args.end, args.project, args.monitors, args.connection, notify=args.notify, at=args.at, dry_run=args.dry_run,
            wait=args.wait, max_windows=args.max_windows, progress=progress,
        )
    print_skipped(summary, "backfill")
    # backfill evaluates windows again, so "already evaluated" is never why it has nothing to do
    nothing = f"nothing to evaluate: no whole window that is due lies between --start {args.start} and --end {args.end}"
    return _finish(args, summary, nothing)


def _finish(args, summary: api.RunSummary, nothing: str | None = None) -> int:
    """What run and backfill print once every window is done, and the exit code --fail-on makes
    of it. With --json the windows go to stdout as JSON and the lines for people to stderr."""
    people = sys.stderr if args.json else sys.stdout
    print_summary(summary, out=people, nothing=nothing or NOTHING_DUE)
    print_notifications(summary.notifications, out=people)
    print_table(summary)
    code = exit_code(summary.exit_code, args.fail_on)
    if args.json:
        print_json(run_json(summary, code))
    return code


def _report(args) -> int:
    from driftline.report_command import write_report

    path = write_report(args.project, Path(args.out), args.connection)
    print(f"wrote {path}")
    return EXIT_OK


def _dbt_sources(args) -> int:
    from driftline.dbt_project import results_schema_of, sources_yaml
    from driftline.errors import ConfigError, Location
    from driftline.project import PROJECT_FILE, load_project

    project = load_project(args.project, args.connection, notify=False)
    schema = args.schema or results_schema_of(project)
    if schema is None:
        raise ConfigError("cannot tell the result tables' schema for this connection; set results.schema or pass --schema", Location(str(project.root / PROJECT_FILE)))
    text = sources_yaml(schema)
    if args.out is None:
        print(text, end="")
        return EXIT_OK
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot write: {error.strerror or error}", Location(args.out)) from None
    print(f"wrote {args.out}", file=sys.stderr)
    return EXIT_OK


def _demo(args) -> int:
    from driftline.demo import run_demo

    return run_demo(Path(args.dir), rows=args.rows)


def _schema(args) -> int:
    from driftline.spec.schema import schema_text

    print(schema_text("project" if args.project else "macros" if args.macros else "monitor"), end="")
    return EXIT_OK


# -- output -------------------------------------------------------------------------------------


NOTHING_DUE = "nothing due: every window is already evaluated"


def print_summary(summary: api.RunSummary, verbose_breaches: bool = True, out=None, nothing: str = NOTHING_DUE) -> None:
    """One line per window evaluated, with its breaches; ``nothing`` says why there is none."""
    out = out or sys.stdout  # looked up now: main() wraps sys.stdout
    if not summary.outcomes and not summary.skipped:  # a skipped monitor is not "nothing due"
        print(nothing, file=out)
    for outcome in summary.outcomes:
        print(_outcome_line(outcome), file=out)
        if outcome.status == "error" or not verbose_breaches:
            continue
        for row in _breaches(outcome.results):
            print(f"    {row}", file=out)


def print_skipped(summary: api.RunSummary, command: str) -> None:
    """One line on stderr per monitor left to the process evaluating it, naming that process.
    Not an error: the exit code is that of the windows this process evaluated (0 if none)."""
    for skip in summary.skipped:
        print(f"driftline {command}: {skip.message()}", file=sys.stderr)


def print_notifications(notifications: list, out=None, err=None) -> None:
    """Alert messages: in full when they were not sent (no Slack, --dry-run), else one line each."""
    out, err = out or sys.stdout, err or sys.stderr
    for note in notifications:
        if note.status in ("suppressed", "preview"):
            heading = "would send" if note.status == "preview" else "alert (no Slack configured)"
            print(f"\n{heading}:\n{note.text}", file=out)
        elif note.status == "sent":
            headline = note.text.splitlines()[1:2] or [""]  # below the "to #channel" line
            print(f"alert sent to {note.message.channel or 'Slack'}: {headline[0]}", file=out)
        elif note.status == "retry":
            print(f"alert for {note.monitor} not delivered yet: {note.error}", file=err)
        else:
            print(f"alert for {note.monitor} could not be delivered: {note.error}", file=err)


def _outcome_line(outcome) -> str:
    window = f"{outcome.window.start:%Y-%m-%d %H:%M} → {outcome.window.end:%Y-%m-%d %H:%M}"
    if outcome.status == "error":
        return f"{outcome.monitor} {window}  ERROR  {outcome.error}"
    counts = Counter(r["status"] for r in outcome.results)
    tally = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"{outcome.monitor} {window}  {outcome.worst.upper():<5} {tally}"


def _breaches(results: list[dict]) -> list[str]:
    from driftline.alerts import threshold_text
    from driftline.notify.messages import visible

    lines = []
    for r in sorted(results, key=lambda r: (r["status"] != "fail", r["check_name"], r["column_name"] or "")):
        if r["status"] not in ("warn", "fail"):
            continue
        # values from the data on one line: a segment value holding "\n" cannot fake a breach line
        segment = f" [{r['segment_key']}={visible(str(r['segment_value']))}]" if r["segment_key"] else ""
        column = f" {visible(r['column_name'])}" if r["column_name"] else ""
        threshold = threshold_text(r, r["status"])  # as the alert says it: an anomaly band has no written one
        lines.append(f"{r['status']:<4} {r['check_name']}{column}{segment} = {r['value']:.4g} (threshold {threshold})")
    return lines


# -- progress, the summary table and JSON --------------------------------------------------------

# The statuses a window can end with, worst first: the columns of the summary table.
WINDOW_STATUSES = ("fail", "warn", "error", "insufficient_data", "ok")
FAIL_ON = ("warn", "fail", "never")


def exit_code(code: int, fail_on: str) -> int:
    """SPEC §4's exit code under ``--fail-on``: which check statuses make it non-zero. 3, driftline
    could not run (a window's error included), stays 3 whatever ``--fail-on`` says."""
    if code == EXIT_ERROR or fail_on == "warn":
        return code
    if fail_on == "fail" and code == EXIT_FAIL:
        return code
    return EXIT_OK


class WindowProgress:
    """The ``progress`` of api.run and api.backfill, shown on stderr: on a terminal a live bar per
    monitor (the window being evaluated, the elapsed time); elsewhere (CI, Airflow's log) one
    flushed line per window as it finishes, since a log keeps every line a bar would redraw."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)  # colour only on a terminal, NO_COLOR honoured
        self._bar = None
        self._tasks: dict[str, tuple[int, list]] = {}  # monitor -> (bar task, windows still to come)
        self._since = time.monotonic()

    def __enter__(self) -> WindowProgress:
        if self.console.is_terminal:
            self._bar = _progress_bar(self.console)
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()  # transient: the summary table takes its place

    def __call__(self, event) -> None:
        from driftline.api import Planned

        if isinstance(event, Planned):
            self._planned(event)
        else:
            self._finished(event)
        self._since = time.monotonic()

    def _planned(self, planned) -> None:
        if self._bar is not None and planned.windows:
            task = self._bar.add_task(planned.monitor, total=len(planned.windows), window=window_text(planned.windows[0]))
            self._tasks[planned.monitor] = (task, list(planned.windows[1:]))

    def _finished(self, outcome) -> None:
        if self._bar is None:
            print(f"{progress_line(outcome)}  ({time.monotonic() - self._since:.1f} s)", file=sys.stderr, flush=True)
            return
        task, coming = self._tasks[outcome.monitor]
        self._bar.update(task, advance=1, window=window_text(coming.pop(0)) if coming else "")


def _progress_bar(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), TextColumn("{task.fields[window]}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    )


def window_text(window) -> str:
    """``[start → end)``, without the times when both are midnight (daily windows and longer)."""
    midnight = window.start.time() == window.end.time() == dtime(0)
    form = "%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M"
    return f"[{window.start:{form}} → {window.end:{form}})"


def progress_line(outcome) -> str:
    """``lead_scoring [2026-10-01 → 2026-10-02) fail  3 fail, 1 warn, 40 ok``"""
    head = f"{outcome.monitor} {window_text(outcome.window)} {outcome.worst}"
    if outcome.status == "error":
        return f"{head}  {outcome.error}"
    counts = Counter(r["status"] for r in outcome.results)
    return f"{head}  " + ", ".join(f"{counts[s]} {s}" for s in WINDOW_STATUSES if counts[s])


def window_counts(summary: api.RunSummary) -> dict[str, Counter]:
    """Per monitor, in the order evaluated, how many windows ended with each status."""
    counts: dict[str, Counter] = {}
    for outcome in summary.outcomes:
        counts.setdefault(outcome.monitor, Counter())[outcome.worst] += 1
    return counts


def print_table(summary: api.RunSummary) -> None:
    """Monitor x windows ok / warn / fail / insufficient / error, on stderr."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    counts = window_counts(summary)
    if not counts:
        return
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("monitor", no_wrap=True)
    for heading in ("windows", "ok", "warn", "fail", "insufficient", "error"):
        table.add_column(heading, justify="right")
    for monitor, count in counts.items():
        cells = [count[s] for s in ("ok", "warn", "fail", "insufficient_data", "error")]
        table.add_row(monitor, str(sum(count.values())), *(str(c) for c in cells))
    Console(stderr=True, highlight=False).print(table)


def print_json(document: dict) -> None:
    """One JSON document on stdout, on one line: a tool that keeps the last line of a command's
    output (Airflow's XCom) holds all of it. NaN and infinities are null, as JSON has neither."""
    print(json.dumps(_jsonable(document), allow_nan=False, ensure_ascii=False))


def run_json(summary: api.RunSummary, code: int) -> dict:
    """``run --json`` and ``backfill --json``: the exit code and every evaluated window."""
    windows = [
        {"monitor": o.monitor, "window_start": o.window.start, "window_end": o.window.end, "status": o.worst, "error": o.error,
         "results": o.results}
        for o in summary.outcomes
    ]
    skipped = [{"monitor": skip.monitor, "message": skip.message()} for skip in getattr(summary, "skipped", [])]
    return {"exit_code": code, "windows": windows, "skipped": skipped}


def _compiled_json(monitor) -> dict:
    return {
        "monitor": monitor.monitor, "dialect": monitor.dialect,
        "window_start": monitor.window.start, "window_end": monitor.window.end,
        "queries": [{"title": q.title, "sql": q.sql, "note": q.note or None} for q in monitor.queries],
    }


def _json_errors_if(args, problems: list[dict]) -> None:
    """With --json, the document a command that could not run writes: its errors, and the keys
    it would have had, empty, so a reader need not tell the two documents apart first."""
    if not getattr(args, "json", False):
        return
    empty = {"validate": {"valid": False}, "compile": {"monitors": []}}.get(args.command, {"windows": [], "skipped": []})
    print_json({"exit_code": EXIT_ERROR, **empty, "errors": problems})


def _problems(error: DriftlineError) -> list[dict]:
    from driftline.errors import ConfigError, problems_of

    errors = problems_of(error) if isinstance(error, ConfigError) else [error]
    return [_problem(e.location, e.message) for e in errors]


def _problem(location, message: str) -> dict:
    """One problem as JSON; line and column are null when unknown (a command-line option)."""
    return {
        "path": location.path if location else None,
        "line": (location.line or None) if location else None,
        "column": (location.column or None) if location else None,
        "message": message,
    }


def _jsonable(value):
    """``value`` as what JSON holds: times as ISO-8601 (driftline's naive times are UTC, so Z),
    NaN and infinities as null, numpy scalars as numbers, anything else as its text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat() + "Z" if value.tzinfo is None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
