"""``driftline init``: a new project with a commented example monitor.

The project carries the JSON Schemas of its files under ``schemas/`` and the first line of each
YAML file points an editor there by a relative path (``# yaml-language-server: $schema=...``):
completion and help work offline, for the driftline version that made the project, without
running anything. ``driftline schema [--project] > schemas/...`` refreshes them after an upgrade.
"""

from __future__ import annotations

from pathlib import Path

from driftline.errors import ConfigError, Location

PROJECT = """\
{modeline}
name: {name}
connection: duckdb://warehouse.duckdb     # an ibis URL; ${{ENV_VAR}} is interpolated everywhere
results:
  schema: null                            # where result tables go; null = connection default
notify:
  slack:
    # token: ${{SLACK_BOT_TOKEN}}          # bot token (chat.postMessage) ...
    # webhook_url: ${{SLACK_WEBHOOK_URL}}  # ... or an incoming webhook
    channel: "#ml-alerts"
report_url: null                          # where report.html is published, linked from alerts
"""

MONITOR = """\
{modeline}
# One monitor per file. Run `driftline validate` after editing, `driftline schema` for the JSON Schema.
name: example_model
description: Example model — replace the table and columns with yours
owner: "@ml-team"
runbook: https://wiki.example.com/runbooks/example-model

source:
  table: predictions                 # [catalog.][schema.]table, or `sql:` a single SELECT
  timestamp: scored_at               # event time column; windows are cut on it

schedule:
  every: 1d                          # window length and cadence
  delay: 1h                          # a window is due once now >= window end + delay

reference:
  trailing: 28d                      # the 28 days just before each window (or start:/end:)

segments: []                         # e.g. [region]
min_rows: 100

features:
  numeric: []                        # e.g. [age, income]
  categorical: []                    # e.g. [country]

checks:
  - drift:
      columns: features
      method: psi
      warn: 0.1
      fail: 0.25
  # With a `model:` block (task, score, label) and `segments:`, a per-segment performance check
  # that opens an alert only for a drop that is both material and beyond sampling noise:
  # - performance:
  #     metric: precision
  #     warn: {{drop: 0.05, confidence: 0.95}}   # drop > 0.05 and > 1.645 standard errors
  #     fail: {{reference_band: 3}}              # outside the reference's own mean ± 3σ

alerts:
  min_severity: warn
  cooldown: 24h
"""

MACROS = """\
{modeline}
macros:
  conversion_rate:
    args: [flag]
    sql: avg(case when {{flag}} then 1.0 else 0.0 end)
"""


def scaffold(directory: Path) -> list[Path]:
    """Write the project files; refuse to overwrite any that exist."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError("is a file, not a directory; pick a new or existing directory for the project", Location(str(directory)))
    from driftline.spec.schema import SCHEMA_FILES, modeline, schema_text

    name = directory.resolve().name.replace(" ", "_") or "project"
    files = {
        directory / "driftline_project.yml": PROJECT.format(modeline=modeline("project"), name=name),
        directory / "monitors" / "example_model.yml": MONITOR.format(modeline=modeline("monitor", "monitors")),
        directory / "macros" / "kpi.yml": MACROS.format(modeline=modeline("macros", "macros")),
        **{directory / path: schema_text(kind) for kind, path in SCHEMA_FILES.items()},
    }
    existing = [path for path in files if path.exists()]
    if existing:
        raise ConfigError("already exists; remove it or pick another directory", Location(str(existing[0])))
    for path, text in files.items():
        _write(path, text)
    return list(files)


def _write(path: Path, text: str) -> None:
    """One file of the project; a directory that cannot be made or written to is one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot create: {error.strerror or error}", Location(str(error.filename or path))) from None
