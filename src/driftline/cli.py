"""The command line: parses arguments, calls the API, prints results, sets the exit code.

Exit codes (SPEC §4): 0 every check ok, 1 some warn, 2 some fail, 3 driftline could not run.
Errors print one line per problem, ``path:line:column: message``; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

from driftline import api
from driftline.errors import DriftlineError


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return api.EXIT_ERROR
    try:
        return args.handler(args)
    except DriftlineError as error:
        if args.debug:
            raise
        print(str(error), file=sys.stderr)
        return api.EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="driftline", description="Monitor ML models inside the warehouse.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        sub.set_defaults(handler=handler)
        return sub

    init = command("init", _init, "scaffold a project with an example monitor")
    init.add_argument("dir", nargs="?", default=".")

    validate = command("validate", _validate, "parse and check every monitor against the warehouse schema")
    _project_options(validate)

    compile_ = command("compile", _compile, "print the SQL a run executes")
    _project_options(compile_)
    compile_.add_argument("--monitor", help="only this monitor")
    compile_.add_argument("--dialect", help="duckdb, postgres, snowflake, bigquery, trino, databricks, pyspark")
    compile_.add_argument("--at", help="'now' for picking the window (ISO-8601, UTC if no offset)")

    run = command("run", _run, "evaluate every due window not yet completed")
    _project_options(run)
    run.add_argument("--monitor", action="append", dest="monitors", help="only this monitor (repeatable)")
    run.add_argument("--at", help="'now' (ISO-8601, UTC if no offset)")
    run.add_argument("--no-notify", action="store_true", help="store alerts but send nothing")
    run.add_argument("--dry-run", action="store_true", help=_DRY_RUN_HELP)

    backfill = command("backfill", _backfill, "evaluate every whole window between --start and --end")
    _project_options(backfill)
    backfill.add_argument("--start", required=True)
    backfill.add_argument("--end", required=True)
    backfill.add_argument("--monitor", action="append", dest="monitors")
    backfill.add_argument("--at", help="'now' (ISO-8601); windows after it are not due")
    backfill.add_argument("--notify", action="store_true", help="also send alerts (off by default)")
    backfill.add_argument("--dry-run", action="store_true", help=_DRY_RUN_HELP)

    report = command("report", _report, "write a static HTML report from the result tables")
    _project_options(report)
    report.add_argument("--out", default="report.html")

    demo = command("demo", _demo, "build a synthetic warehouse and run the example monitors over it")
    demo.add_argument("--dir", default="demo")
    demo.add_argument("--rows", type=int, default=1_000_000)

    command("schema", _schema, "print the JSON Schema of the monitor YAML")
    parser.set_defaults(debug=False)
    return parser


_DRY_RUN_HELP = "print the alert messages instead of sending them; they stay pending for the next run"


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
    summary = api.run(args.project, args.at, args.monitors, args.connection, notify=not args.no_notify, dry_run=args.dry_run)
    print_summary(summary)
    print_notifications(summary.notifications)
    return summary.exit_code


def _backfill(args) -> int:
    summary = api.backfill(
        args.start, args.end, args.project, args.monitors, args.connection, notify=args.notify, at=args.at, dry_run=args.dry_run
    )
    print_summary(summary)
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


def print_summary(summary: api.RunSummary, verbose_breaches: bool = True, out=sys.stdout) -> None:
    if not summary.outcomes:
        print("nothing due: every window is already evaluated", file=out)
    for outcome in summary.outcomes:
        print(_outcome_line(outcome), file=out)
        if outcome.status == "error" or not verbose_breaches:
            continue
        for row in _breaches(outcome.results):
            print(f"    {row}", file=out)


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
        segment = f" [{r['segment_key']}={r['segment_value']}]" if r["segment_key"] else ""
        column = f" {r['column_name']}" if r["column_name"] else ""
        threshold = r["fail_threshold"] if r["status"] == "fail" else r["warn_threshold"]
        lines.append(f"{r['status']:<4} {r['check_name']}{column}{segment} = {r['value']:.4g} (threshold {threshold})")
    return lines


if __name__ == "__main__":
    sys.exit(main())
