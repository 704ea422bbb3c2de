"""The command line: parses arguments, calls the API, prints results, sets the exit code.

Exit codes (SPEC §4): 0 every check ok, 1 some warn, 2 some fail, 3 driftline could not run
(a usage error included). Errors print one line per problem, ``path:line:column: message``;
``--debug`` adds the traceback above them and keeps the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Sequence

from driftline import api
from driftline.alerts import threshold_text
from driftline.errors import DriftlineError
from driftline.notify.messages import visible


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
        return api.EXIT_ERROR
    try:
        return args.handler(args)
    except DriftlineError as error:
        _traceback_if(args.debug)
        print(str(error), file=sys.stderr)
        return api.EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a bug or an unforeseen failure: still one line, no traceback (SPEC §4)
        _traceback_if(args.debug)
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        hint = "" if args.debug else " (rerun with --debug for the traceback)"
        print(f"driftline {args.command}: unexpected error: {type(error).__name__}: {first}{hint}", file=sys.stderr)
        return api.EXIT_ERROR


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
        self.exit(api.EXIT_ERROR, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the command's own parser, whose usage and --help have the options
        command_parser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="driftline", description="Monitor ML models inside the warehouse.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
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

    compile_ = command("compile", _compile, "print the SQL a run executes")
    _project_options(compile_)
    compile_.add_argument("--monitor", help="only this monitor")
    compile_.add_argument("--dialect", help="duckdb, postgres, snowflake, bigquery, trino, databricks, clickhouse, pyspark")
    compile_.add_argument("--at", help="'now' for picking the window (ISO-8601, UTC if no offset)")

    run = command("run", _run, "evaluate every due window not yet completed")
    _project_options(run)
    run.add_argument("--monitor", action="append", dest="monitors", help="only this monitor (repeatable)")
    run.add_argument("--at", help="'now' (ISO-8601, UTC if no offset)")
    run.add_argument("--no-notify", action="store_true", help="store alerts but send nothing")
    run.add_argument("--dry-run", action="store_true", help=_DRY_RUN_HELP)
    run.add_argument("--wait", type=_seconds, metavar="SECONDS", help=_WAIT_HELP)

    backfill = command("backfill", _backfill, "evaluate every whole window between --start and --end")
    _project_options(backfill)
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

    demo = command("demo", _demo, "build a synthetic warehouse and run the example monitors over it")
    demo.add_argument("--dir", default="demo")
    demo.add_argument("--rows", type=int, default=1_000_000)

    command("schema", _schema, "print the JSON Schema of the monitor YAML")
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


def _project_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", default=".", help="project directory (default: .)")
    parser.add_argument("--connection", help="warehouse URL, overrides the project and DRIFTLINE_CONNECTION")


# -- handlers -----------------------------------------------------------------------------------


def _init(args) -> int:
    from driftline.scaffold import scaffold

    for path in scaffold(Path(args.dir)):
        print(f"created {path}")
    return api.EXIT_OK


def _validate(args) -> int:
    names = api.validate(args.project, args.connection)
    print(f"ok: {len(names)} monitor{'s' if len(names) != 1 else ''} valid ({', '.join(names)})")
    return api.EXIT_OK


def _compile(args) -> int:
    print(api.compile(args.project, args.monitor, args.dialect, args.connection, args.at), end="")
    return api.EXIT_OK


def _run(args) -> int:
    summary = api.run(args.project, args.at, args.monitors, args.connection, notify=not args.no_notify, dry_run=args.dry_run, wait=args.wait)
    print_skipped(summary, "run")
    print_summary(summary)
    print_notifications(summary.notifications)
    return summary.exit_code


def _backfill(args) -> int:
    summary = api.backfill(
        args.start, args.end, args.project, args.monitors, args.connection, notify=args.notify, at=args.at, dry_run=args.dry_run,
        max_windows=args.max_windows, wait=args.wait,
    )
    print_skipped(summary, "backfill")
    # backfill evaluates windows again, so "already evaluated" is never why it has nothing to do
    nothing = f"nothing to evaluate: no whole window that is due lies between --start {args.start} and --end {args.end}"
    print_summary(summary, nothing=nothing)
    print_notifications(summary.notifications)
    return summary.exit_code


def _report(args) -> int:
    from driftline.report_command import write_report

    path = write_report(args.project, Path(args.out), args.connection)
    print(f"wrote {path}")
    return api.EXIT_OK


def _demo(args) -> int:
    from driftline.demo import run_demo

    return run_demo(Path(args.dir), rows=args.rows)


def _schema(args) -> int:
    from driftline.spec.schema import monitor_json_schema

    print(json.dumps(monitor_json_schema(), indent=2))
    return api.EXIT_OK


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


if __name__ == "__main__":
    sys.exit(main())
