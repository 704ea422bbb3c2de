"""Monitor YAML (SPEC §3): what is accepted, and errors that point at the key in the file,
``path:line:column: message``, with close matches for misspellings."""

from __future__ import annotations

import datetime as dt
import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from driftline.errors import ConfigError, ConfigErrors
from driftline.project import load_project
from driftline.spec.loader import load_monitor_file
from driftline.spec.models import CHECK_TYPES, DriftCheck, check_name
from driftline.spec.schema import monitor_json_schema

VALID = """
name: leads
source:
  table: lead_predictions
  timestamp: scored_at
schedule:
  every: 1d
reference:
  trailing: 28d
features:
  numeric: [visits]
checks:
  - drift:
      method: psi
"""

# SPEC §3's example, with `label` dropped: the SPEC shows `label` and `labels` as alternatives.
SPEC_EXAMPLE = """
name: lead_scoring
description: Lead scoring model v3
owner: "@growth-ml"
runbook: https://wiki.example.com/runbooks/lead-scoring
tags: [growth, tier-1]
source:
  table: lead_predictions
  timestamp: scored_at
  where: "model_version = 'v3'"
model:
  task: binary_classification
  score: score
  prediction: null
  threshold: 0.5
  labels:
    table: lead_outcomes
    key: lead_id
    column: converted
    delay: 7d
schedule:
  every: 1d
  delay: 0h
reference:
  start: 2026-09-01
  end: 2026-10-01
segments: [region]
min_rows: 100
features:
  numeric: [company_size, visits_7d]
  categorical: [industry, country]
checks:
  - drift:
      columns: features
      method: psi
      warn: 0.1
      fail: 0.25
  - performance:
      metric: roc_auc
      fail: {below: 0.70}
      warn: {drop: 0.03}
  - fairness:
      metric: demographic_parity_ratio
      group: gender
      fail: {below: 0.8}
  - quality:
      metric: null_rate
      columns: features
      fail: {above: 0.05}
  - latency:
      column: latency_ms
      quantile: 0.99
      fail: {above: 250}
  - metric:
      name: conversion_rate
      sql: conversion_rate(converted)
      anomaly: {method: mad, sensitivity: 3, history: 28, seasonality: day_of_week}
alerts:
  channel: "#growth-ml"
  min_severity: warn
  cooldown: 24h
"""


def write(tmp_path: Path, text: str, name: str = "monitor.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path, env=None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_monitor_file(path, env or {})
    error = caught.value
    return [str(e) for e in error.errors] if isinstance(error, ConfigErrors) else [str(error)]


def position(path: Path, pattern: str, occurrence: int = 0) -> str:
    """``path:line:column`` of the ``occurrence``-th line matching ``pattern`` (its first
    non-blank, non-dash character)."""
    matches = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(pattern, line)]
    n, line = matches[occurrence]
    return f"{path}:{n}:{len(line) - len(line.lstrip(' -')) + 1}"


def one_problem(path: Path, env=None) -> str:
    found = problems(path, env)
    assert len(found) == 1, found
    return found[0]


def test_valid_monitor_and_its_defaults(tmp_path):
    (loaded,) = load_monitor_file(write(tmp_path, VALID), {})
    spec = loaded.spec
    assert spec.name == "leads" and spec.min_rows == 100
    assert spec.schedule.every == dt.timedelta(days=1) and spec.schedule.delay == dt.timedelta(0)
    assert spec.reference.trailing == dt.timedelta(days=28)
    (check,) = spec.checks
    assert isinstance(check, DriftCheck)
    assert (check.method, check.bins, check.binning, check.max_categories, check.epsilon) == ("psi", 10, "quantile", 20, 1e-4)
    assert (check.warn, check.fail) == (0.1, 0.25)  # SPEC §6 default thresholds for psi
    assert check_name(check) == "drift_psi"


def test_the_spec_example_is_valid(tmp_path):
    (loaded,) = load_monitor_file(write(tmp_path, SPEC_EXAMPLE), {})
    spec = loaded.spec
    assert [c.type for c in spec.checks] == ["drift", "performance", "fairness", "quality", "latency", "metric"]
    assert spec.reference.start == dt.datetime(2026, 9, 1) and spec.alerts.cooldown == dt.timedelta(hours=24)
    assert spec.model.labels.delay == dt.timedelta(days=7)


def test_misspelled_key_points_at_it_with_a_suggestion(tmp_path):
    path = write(tmp_path, VALID.replace("      method: psi", "      metod: psi"))
    message = one_problem(path)
    assert message.startswith(position(path, "metod") + ": ")
    assert "unknown key 'metod'" in message and "did you mean 'method'?" in message


def test_misspelled_top_level_key(tmp_path):
    path = write(tmp_path, VALID.replace("schedule:", "schedul:"))
    found = problems(path)
    assert any(m.startswith(position(path, "schedul:")) and "did you mean 'schedule'?" in m for m in found), found
    assert any("missing required key 'schedule'" in m for m in found), found


def test_misspelled_check_type_and_value(tmp_path):
    path = write(tmp_path, VALID.replace("  - drift:", "  - drfit:"))
    message = one_problem(path)
    assert message.startswith(position(path, "drfit:") + ": ")
    assert "unknown check type 'drfit'" in message and "did you mean 'drift'?" in message

    path = write(tmp_path, VALID.replace("method: psi", "method: pis"), "method.yml")
    message = one_problem(path)
    assert message.startswith(position(path, "method: pis") + ": ")
    assert "'pis' is not allowed" in message and "did you mean 'psi'?" in message


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        ("features:", "min_rows: lots\nfeatures:", "min_rows", "valid integer"),
        ("      method: psi", "      method: psi\n      bins: ten", "bins", "valid integer"),
        ("      method: psi", "      method: psi\n      bins: 1", "bins", "greater than or equal to 2"),
        ("      method: psi", "      method: psi\n      p_value: 1.5", "p_value", "less than 1"),
        ("  every: 1d", "  every: daily", "every", "duration like 15m, 1h, 1d or 7d"),
        ("  trailing: 28d", "  start: 2026-02-01\n  end: 2026-01-01", "start", "`start` before `end`"),
        ("name: leads", "name: Leads-v3", "name", "should match pattern"),
        ("  numeric: [visits]", "  numeric: visits", "numeric", "valid list"),
        ("  every: 1d", "  every: 0d", "every", "`every` must be longer than 0, got 0s"),
        ("  trailing: 28d", "  trailing: 0h", "trailing", "`trailing` must be longer than 0, got 0s"),
    ],
)
def test_wrong_types_point_at_their_key(tmp_path, old, new, key, words):
    path = write(tmp_path, VALID.replace(old, new))
    message = one_problem(path)
    if key == "start":  # a problem of the whole `reference` block is reported at the block
        key = "reference"
    assert message.startswith(position(path, rf"^\s*-?\s*{key}:") + ": "), message
    assert words in message


@pytest.mark.parametrize(
    ("threshold", "words"),
    [
        ("high", "expected a number or one of {above: x}"),
        ("{abov: 0.2}", "unknown key 'abov' in checks[0].drift.warn (did you mean 'above'?)"),
        ("{outside: [0.5, 0.1]}", "outside: [lo, hi] needs lo <= hi"),
        ("{above: 1, below: 2}", "exactly one of above, below, outside, drop, rise"),
    ],
)
def test_bad_thresholds(tmp_path, threshold, words):
    path = write(tmp_path, VALID.replace("      method: psi", f"      method: psi\n      warn: {threshold}"))
    message = one_problem(path)
    assert words in message
    assert message.startswith(f"{path}:{14}:"), message  # the `warn:` line (or the key inside it)


@pytest.mark.parametrize(
    "threshold",
    ["0.2", "{above: 0.2}", "{below: 0.01}", "{outside: [0.01, 0.3]}"],
)
def test_threshold_forms(tmp_path, threshold):
    (loaded,) = load_monitor_file(write(tmp_path, VALID.replace("method: psi", f"method: js\n      fail: {threshold}")), {})
    assert loaded.spec.checks[0].fail is not None


def test_every_problem_of_a_file_is_reported_at_once(tmp_path):
    text = VALID.replace("      method: psi", "      metod: psi\n  - drift:\n      method: psx\n  - perfomance:\n      metric: auc")
    found = problems(write(tmp_path, text))
    assert len(found) == 3, found


def test_checks_must_be_single_key_mappings(tmp_path):
    path = write(tmp_path, VALID + "  - just a string\n  - drift: psi\n")
    found = problems(path)
    assert len(found) == 2
    assert all("each check is a mapping with one key" in m for m in found)
    assert found[0].startswith(position(path, "just a string"))


def test_environment_variables_are_interpolated(tmp_path):
    path = write(tmp_path, VALID.replace("table: lead_predictions", "table: ${SCHEMA}.lead_predictions"))
    (loaded,) = load_monitor_file(path, {"SCHEMA": "ml"})
    assert loaded.spec.source.table == "ml.lead_predictions"


def test_an_unset_variable_is_an_error_naming_it_and_the_file(tmp_path):
    path = write(tmp_path, VALID.replace("table: lead_predictions", "table: ${SCHEMA}.lead_predictions"))
    message = one_problem(path, env={"OTHER": "x"})
    assert message.startswith(position(path, r"table: \$") + ": ")
    assert "SCHEMA" in message and "not set" in message


def test_invalid_yaml_and_duplicate_keys(tmp_path):
    path = write(tmp_path, VALID.replace("  every: 1d", "  every: [1d"))
    message = one_problem(path)
    assert message.startswith(f"{path}:") and "invalid YAML" in message
    path = write(tmp_path, VALID.replace("  every: 1d", "  every: 1d\n  every: 2d"), "dup.yml")
    message = one_problem(path)
    assert message.startswith(position(path, "every: 2d") + ": ") and "duplicate key 'every'" in message


def test_two_checks_with_the_same_name(tmp_path):
    path = write(tmp_path, VALID + "  - drift:\n      method: psi\n")
    message = one_problem(path)
    assert message == f"{path}:14:5: checks[1]: named 'drift_psi' as checks[0] is; give one of them a `name:`"


@pytest.mark.parametrize(
    ("features", "where", "words"),
    [
        ("  numeric: [visits]\n  categorical: [plan, visits]", "11:23", "features.categorical[1]: column 'visits' is listed under both `numeric` and `categorical`"),
        ("  numeric: [visits, pages, visits]", "10:28", "features.numeric[2]: column 'visits' is listed twice under `numeric`"),
    ],
)
def test_a_feature_listed_twice_is_pointed_at(tmp_path, features, where, words):
    path = write(tmp_path, VALID.replace("  numeric: [visits]", features))
    assert one_problem(path).startswith(f"{path}:{where}: {words}")


def test_a_file_may_hold_a_list_of_monitors(tmp_path):
    first = textwrap.indent(textwrap.dedent(VALID).strip(), "  ").replace("  name:", "- name:", 1)
    second = first.replace("- name: leads", "- name: leads_daily_ks").replace("method: psi", "method: ks")
    path = write(tmp_path, first + "\n" + second + "\n")
    loaded = load_monitor_file(path, {})
    assert [m.name for m in loaded] == ["leads", "leads_daily_ks"]
    # errors in the second monitor point into the second monitor
    broken = write(tmp_path, first + "\n" + second.replace("method: ks", "method: kss") + "\n", "broken.yml")
    assert one_problem(broken).startswith(position(broken, "method: kss") + ": ")


def test_a_file_that_is_not_a_monitor(tmp_path):
    message = one_problem(write(tmp_path, "just text\n"))
    assert "expected a monitor" in message


def project(tmp_path: Path, monitors: dict[str, str], settings: str = "name: p\nconnection: duckdb://w.duckdb\n") -> Path:
    (tmp_path / "monitors").mkdir(parents=True, exist_ok=True)
    (tmp_path / "driftline_project.yml").write_text(settings)
    for name, text in monitors.items():
        write(tmp_path / "monitors", text, f"{name}.yml")
    return tmp_path


def test_duplicate_monitor_names_across_files(tmp_path):
    root = project(tmp_path, {"a": VALID, "b": VALID})
    with pytest.raises(ConfigErrors) as caught:
        load_project(root, env={})
    (error,) = caught.value.errors
    assert str(error) == f"{root / 'monitors' / 'b.yml'}:1:1: duplicate monitor name 'leads'"


def test_project_file_interpolation_and_connection_override(tmp_path):
    root = project(tmp_path, {"a": VALID}, "name: p\nconnection: postgres://u:${PGPASSWORD}@db/x\n")
    assert load_project(root, env={"PGPASSWORD": "s3cret"}).connection == "postgres://u:s3cret@db/x"
    assert load_project(root, env={"PGPASSWORD": "s", "DRIFTLINE_CONNECTION": "duckdb://env.duckdb"}).connection == "duckdb://env.duckdb"
    assert load_project(root, "duckdb://cli.duckdb", env={"PGPASSWORD": "s", "DRIFTLINE_CONNECTION": "x"}).connection == "duckdb://cli.duckdb"
    with pytest.raises(ConfigError) as caught:
        load_project(root, env={})
    assert str(caught.value).startswith(f"{root / 'driftline_project.yml'}:2:") and "PGPASSWORD" in str(caught.value)


def test_project_file_errors_are_located(tmp_path):
    root = project(tmp_path, {"a": VALID}, "name: p\nresult:\n  schema: x\n")
    with pytest.raises(ConfigErrors) as caught:
        load_project(root, env={})
    (error,) = caught.value.errors
    assert str(error).startswith(f"{root / 'driftline_project.yml'}:2:1: unknown key 'result'") and "did you mean 'results'?" in str(error)


# -- the JSON Schema for editors -----------------------------------------------------------------


def schema_errors(instance, schema: dict) -> list[str]:
    """Validation errors of ``instance``: jsonschema when installed, else a small validator of
    the keywords the monitor schema uses."""
    try:
        import jsonschema
    except ImportError:
        return list(_validate(instance, schema, schema, "$"))
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(instance)]


_TYPES = {
    "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "null": lambda v: v is None,
}


def _validate(value, node: dict, root: dict, where: str):
    if "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        yield from _validate(value, target, root, where)
    if "type" in node:
        kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_TYPES[k](value) for k in kinds):
            yield f"{where}: {value!r} is not of type {node['type']}"
            return
    if "enum" in node and value not in node["enum"]:
        yield f"{where}: {value!r} not in {node['enum']}"
    if "const" in node and value != node["const"]:
        yield f"{where}: {value!r} != {node['const']!r}"
    for key, passes in (("anyOf", lambda n: n >= 1), ("oneOf", lambda n: n == 1)):
        if key in node:
            matching = sum(1 for option in node[key] if not list(_validate(value, option, root, where)))
            if not passes(matching):
                yield f"{where}: {matching} of {key} match"
    for option in node.get("allOf", []):
        yield from _validate(value, option, root, where)
    if isinstance(value, str) and "pattern" in node and not re.search(node["pattern"], value):
        yield f"{where}: {value!r} does not match {node['pattern']}"
    if _TYPES["number"](value):
        for key, ok in (("minimum", value >= node.get("minimum", value)), ("maximum", value <= node.get("maximum", value)),
                        ("exclusiveMinimum", "exclusiveMinimum" not in node or value > node["exclusiveMinimum"]),
                        ("exclusiveMaximum", "exclusiveMaximum" not in node or value < node["exclusiveMaximum"])):
            if not ok:
                yield f"{where}: {value} breaks {key}"
    if isinstance(value, dict):
        properties = node.get("properties", {})
        for name in node.get("required", []):
            if name not in value:
                yield f"{where}: missing {name}"
        for name, item in value.items():
            if name in properties:
                yield from _validate(item, properties[name], root, f"{where}.{name}")
            elif node.get("additionalProperties") is False:
                yield f"{where}: unexpected {name}"
            elif isinstance(node.get("additionalProperties"), dict):
                yield from _validate(item, node["additionalProperties"], root, f"{where}.{name}")
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0) or len(value) > node.get("maxItems", len(value)):
            yield f"{where}: {len(value)} items"
        prefix = node.get("prefixItems", [])
        for i, item in enumerate(value):
            rule = prefix[i] if i < len(prefix) else node.get("items")
            if isinstance(rule, dict):
                yield from _validate(item, rule, root, f"{where}[{i}]")


def as_editor_reads(text: str):
    """YAML as an editor validates it: dates stay strings (YAML 1.2 has no timestamp type)."""
    def plain(value):
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(yaml.safe_load(textwrap.dedent(text)))


def example_monitors() -> list[Path]:
    """Monitors shipped with the project (the demo's, the repository's examples), if any."""
    here = Path(__file__).resolve().parents[1]
    places = [here / "monitors", here / "src" / "driftline" / "demo_project" / "monitors", here / "examples"]
    return sorted(p for place in places if place.is_dir() for p in place.rglob("*.yml"))


def test_schema_is_json_and_names_every_check_type():
    schema = json.loads(json.dumps(monitor_json_schema()))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert set(schema["required"]) >= {"name", "source", "schedule", "reference", "checks"}
    variants = schema["properties"]["checks"]["items"]["oneOf"]
    written_as = [next(iter(v["properties"])) for v in variants]
    assert written_as == list(CHECK_TYPES) and {"drift", "performance", "fairness", "quality", "latency", "metric"} <= set(written_as)
    assert schema["$defs"]["Alerts"]["properties"]["cooldown"]["default"] == "24h"  # as written in YAML


@pytest.mark.parametrize("text", [VALID, SPEC_EXAMPLE], ids=["small", "spec_example"])
def test_schema_validates_example_monitors(text):
    assert schema_errors(as_editor_reads(text), monitor_json_schema()) == []


@pytest.mark.parametrize("path", example_monitors(), ids=lambda p: p.name)
def test_schema_validates_shipped_monitors(path):
    document = as_editor_reads(path.read_text())
    schema = monitor_json_schema()
    for monitor in document if isinstance(document, list) else [document]:
        assert schema_errors(monitor, schema) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [("method: psi", "metod: psi"), ("method: psi", "method: psx"), ("every: 1d", "every: daily"), ("  - drift:", "  - drfit:")],
)
def test_schema_rejects_what_the_loader_rejects(old, new):
    assert schema_errors(as_editor_reads(VALID.replace(old, new)), monitor_json_schema()) != []
