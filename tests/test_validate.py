"""``validate``: every monitor checked against the warehouse's real schema, each problem reported
at the YAML key that caused it, with close matches, and nothing executed in the warehouse."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pandas as pd
import pytest

from driftline import api, cli
from driftline.errors import ConfigError, ConfigErrors

MONITOR = """
name: leads
source:
  table: lead_predictions
  timestamp: scored_at
schedule: {every: 1d}
reference: {trailing: 7d}
segments: [region]
features:
  numeric: [visits, score]
  categorical: [industry]
checks:
  - drift:
      method: psi
"""


@pytest.fixture
def leads():
    start = datetime(2026, 1, 1)
    return pd.DataFrame(
        {
            "scored_at": [start + timedelta(hours=i) for i in range(48)],
            "scored_day": [f"2026-01-{1 + i // 24:02d}" for i in range(48)],
            "visits": list(range(48)),
            "score": [i / 48 for i in range(48)],
            "industry": ["saas", "retail"] * 24,
            "region": ["north", "south", "east", "west"] * 12,
            "company_size": [str(i) for i in range(48)],
        }
    )


def problems_of(project) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        api.validate(project.root)
    error = caught.value
    return [str(e) for e in error.errors] if isinstance(error, ConfigErrors) else [str(error)]


def at(project, pattern: str) -> str:
    """``path:line:column`` of the first line of monitors/leads.yml matching ``pattern``, at the
    matched text."""
    path = project.root / "monitors" / "leads.yml"
    for n, line in enumerate(path.read_text().splitlines(), 1):
        found = re.search(pattern, line)
        if found:
            return f"{path}:{n}:{found.start() + 1}"
    raise AssertionError(f"{pattern!r} not in {path}")


def test_a_valid_project(make_project, leads):
    project = make_project(monitors={"leads": MONITOR}, tables={"lead_predictions": leads})
    assert api.validate(project.root) == ["leads"]


def test_missing_table_with_close_match(make_project, leads):
    project = make_project(monitors={"leads": MONITOR.replace("table: lead_predictions", "table: lead_predictons")},
                           tables={"lead_predictions": leads})
    (message,) = problems_of(project)
    assert message.startswith(at(project, "table:") + ": ")
    assert "table 'lead_predictons' not found (did you mean 'lead_predictions'?)" in message


def test_misspelled_columns_are_located_at_the_yaml_key(make_project, leads):
    text = MONITOR.replace("numeric: [visits, score]", "numeric: [vists, score]").replace("segments: [region]", "segments: [regoin]")
    project = make_project(monitors={"leads": text}, tables={"lead_predictions": leads})
    found = problems_of(project)
    assert len(found) == 2, found
    visits = next(m for m in found if "vists" in m)
    assert visits.startswith(at(project, "vists") + ": ")
    assert "column 'vists' not found in the source (did you mean 'visits'?)" in visits
    region = next(m for m in found if "regoin" in m)
    assert region.startswith(at(project, "regoin") + ": ") and "did you mean 'region'?" in region


def test_numeric_feature_that_is_a_string(make_project, leads):
    text = MONITOR.replace("numeric: [visits, score]", "numeric: [visits, company_size]")
    project = make_project(monitors={"leads": text}, tables={"lead_predictions": leads})
    (message,) = problems_of(project)
    assert message.startswith(at(project, "company_size") + ": ")
    assert "'company_size' is string, not numeric" in message and "features.categorical" in message


def test_timestamp_that_is_not_a_timestamp(make_project, leads):
    project = make_project(monitors={"leads": MONITOR.replace("timestamp: scored_at", "timestamp: scored_day")},
                           tables={"lead_predictions": leads})
    (message,) = problems_of(project)
    assert message.startswith(at(project, "timestamp:") + ": ")
    assert "'scored_day' is string, expected a timestamp" in message


def test_a_statement_in_where_is_rejected_and_never_runs(make_project, leads):
    text = MONITOR.replace("  timestamp: scored_at", '  timestamp: scored_at\n  where: "1=1; drop table lead_predictions"')
    project = make_project(monitors={"leads": text}, tables={"lead_predictions": leads})
    (message,) = problems_of(project)
    assert message.startswith(at(project, "where:") + ": ") and ";" in message
    with pytest.raises(ConfigError):
        api.run(project.root, at="2026-01-03", notify=False)
    assert project.query("select count(*) as n from lead_predictions").n.tolist() == [48]


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("select * from lead_predictions; drop table lead_predictions", "found a statement ';' followed by 'drop'"),
        ("select * from lead_predictions;", "found a trailing ';'"),
        ("with gone as (delete from lead_predictions returning *) select * from gone", "may only read, found DELETE"),
        ("drop table lead_predictions", "expected a SELECT query, found a DROP statement"),
    ],
)
def test_a_source_query_that_writes_is_rejected_and_never_runs(make_project, leads, sql, words):
    text = MONITOR.replace("  table: lead_predictions", f'  sql: "{sql}"')
    project = make_project(monitors={"leads": text}, tables={"lead_predictions": leads})
    for attempt in (lambda: api.validate(project.root), lambda: api.run(project.root, at="2026-01-03", notify=False)):
        with pytest.raises(ConfigError) as caught:
            attempt()
        assert str(caught.value).startswith(at(project, "sql:") + ": source.sql: ") and words in str(caught.value)
    assert project.query("select count(*) as n from lead_predictions").n.tolist() == [48]


def test_a_float_segment_column_is_rejected(make_project, leads):
    project = make_project(monitors={"leads": MONITOR.replace("segments: [region]", "segments: [region, score]")},
                           tables={"lead_predictions": leads})
    (message,) = problems_of(project)
    assert message.startswith(at(project, r"score\]") + ": ")  # at the list item
    assert "segment column 'score' is float64: segments are categories" in message


def test_where_naming_an_unknown_column(make_project, leads):
    text = MONITOR.replace("  timestamp: scored_at", "  timestamp: scored_at\n  where: \"regon = 'north'\"")
    project = make_project(monitors={"leads": text}, tables={"lead_predictions": leads})
    (message,) = problems_of(project)
    assert message.startswith(at(project, "where:") + ": ") and "regon" in message and "region" in message


@pytest.mark.parametrize(
    ("check", "words", "key"),
    [
        ("method: psi\n      p_value: 0.05", "p_value gating needs a method with a p-value", "p_value"),
        ("method: ks", "method ks needs numeric columns; 'industry' is categorical", "- drift"),
        ("method: psi\n      warn: {drop: 0.1}", "drop/rise compare with the reference window", "warn"),
        ("method: psi\n      columns: [visits, scroe]", "column 'scroe' not found in the source (did you mean 'score'?)", "scroe"),
    ],
)
def test_drift_options_checked_against_the_schema(make_project, leads, check, words, key):
    project = make_project(monitors={"leads": MONITOR.replace("method: psi", check)}, tables={"lead_predictions": leads})
    (message,) = problems_of(project)
    assert words in message
    assert message.startswith(at(project, key.lstrip("- ") if key != "- drift" else "drift") + ": "), message


def test_every_monitor_is_checked(make_project, leads):
    broken = MONITOR.replace("name: leads", "name: other").replace("table: lead_predictions", "table: nope")
    project = make_project(monitors={"leads": MONITOR.replace("visits", "vists"), "other": broken},
                           tables={"lead_predictions": leads})
    found = problems_of(project)
    assert len(found) == 2 and any("other.yml" in m for m in found) and any("leads.yml" in m for m in found)


def test_the_command_exits_3_with_one_line_per_problem(make_project, leads, capsys):
    text = MONITOR.replace("numeric: [visits, score]", "numeric: [vists, scroe]")
    project = make_project(monitors={"leads": text}, tables={"lead_predictions": leads})
    assert cli.main(["validate", "--project", str(project.root)]) == 3
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(re.match(r"^/.+\.yml:\d+:\d+: column '\w+' not found", line) for line in lines), err
    assert "Traceback" not in err and out == ""
    fixed = MONITOR
    project.write_monitor("leads", fixed)
    assert cli.main(["validate", "--project", str(project.root)]) == 0
    assert "1 monitor valid" in capsys.readouterr().out


def test_a_directory_without_a_project(tmp_path, capsys):
    assert cli.main(["run", "--project", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err == f"{tmp_path / 'driftline_project.yml'}: no driftline_project.yml here; run `driftline init {tmp_path}` or pass --project DIR\n"
