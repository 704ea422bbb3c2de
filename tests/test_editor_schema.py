"""The editor schemas (`driftline schema [--project]`, committed under schemas/) accept every monitor
and project file the repository shows, as an independent JSON Schema validator (jsonschema,
Draft 2020-12) reads them; every key has a description and every fixed set of values its enum."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from driftline import demo, metrics
from driftline.cli import main
from driftline.project import ProjectFile
from driftline.scaffold import scaffold
from driftline.spec.models import Monitor

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = (
    "driftline schema > schemas/monitor.schema.json && driftline schema --project > schemas/project.schema.json"
    " && driftline schema --macros > schemas/macros.schema.json"
)


def printed_schema(capsys, *args: str) -> dict:
    assert main(["schema", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def monitor_schema(capsys) -> dict:
    return printed_schema(capsys)


@pytest.fixture
def project_schema(capsys) -> dict:
    return printed_schema(capsys, "--project")


@pytest.fixture
def macros_schema(capsys) -> dict:
    return printed_schema(capsys, "--macros")


class EditorLoader(yaml.SafeLoader):
    """YAML as an editor's language server reads it: `2026-10-01` is text, not a date object."""


EditorLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def as_editor_reads(text: str):
    return yaml.load(text, Loader=EditorLoader)  # noqa: S506 - a SafeLoader


def validate(schema: dict, document) -> None:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.M | re.S)


def test_the_committed_schemas_are_the_generated_ones(monitor_schema, project_schema, macros_schema):
    for kind, printed in (("monitor", monitor_schema), ("project", project_schema), ("macros", macros_schema)):
        committed = json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text(encoding="utf-8"))
        assert committed == printed, f"schemas/{kind}.schema.json is stale; run: {REGENERATE}"


def test_the_schemas_are_valid_draft_2020_12(monitor_schema, project_schema, macros_schema):
    for schema in (monitor_schema, project_schema, macros_schema):
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_shipped_monitor_validates(monitor_schema):
    files = sorted((ROOT / "monitors").glob("*.yml"))
    assert len(files) >= 2
    for file in files:
        validate(monitor_schema, as_editor_reads(file.read_text(encoding="utf-8")))


def test_every_shipped_macro_file_validates(macros_schema):
    files = sorted((ROOT / "macros").glob("*.yml"))
    assert files
    for file in files:
        validate(macros_schema, as_editor_reads(file.read_text(encoding="utf-8")))


def test_what_the_macro_loader_refuses_the_schema_refuses_too(tmp_path, macros_schema):
    from driftline.errors import ConfigError
    from driftline.macros import load_macros

    for text in ("macros:\n  Rate: {sql: avg(x)}\n", "macros:\n  rate: {args: [x]}\n", "macros:\n  rate: {sql: avg(x), arg: [x]}\n", "macro: {}\n"):
        (tmp_path / "m.yml").write_text(text, encoding="utf-8")
        with pytest.raises(AssertionError):
            validate(macros_schema, as_editor_reads(text))
        with pytest.raises(ConfigError):
            load_macros([tmp_path / "m.yml"])


def test_every_yaml_block_of_the_readme_and_spec_validates(monitor_schema, project_schema, macros_schema):
    """A block is a whole monitor, a whole project file, or a piece of one (checks, notify)."""
    blocks = yaml_blocks(ROOT / "README.md") + yaml_blocks(ROOT / "docs" / "SPEC.md")
    kinds = []
    for block in blocks:
        document = as_editor_reads(block)
        if isinstance(document, list):  # `- drift: {...}`: checks of a monitor
            kinds.append("checks")
            validate({**monitor_schema, **monitor_schema["properties"]["checks"], "minItems": 0}, document)
        elif "macros" in document:
            kinds.append("macros")
            validate(macros_schema, document)
        elif "source" in document or "checks" in document:
            kinds.append("monitor")
            validate(monitor_schema if "name" in document else {**monitor_schema, "required": []}, document)
        else:
            kinds.append("project")
            validate(project_schema, {"name": "example", **document})
    assert {"monitor", "project", "checks", "macros"} <= set(kinds), kinds


def test_the_demo_and_init_projects_validate(tmp_path, monitor_schema, project_schema, macros_schema):
    demo.prepare_project(tmp_path / "demo")
    validate(project_schema, as_editor_reads((tmp_path / "demo" / "driftline_project.yml").read_text(encoding="utf-8")))
    scaffold(tmp_path / "new")
    validate(project_schema, as_editor_reads((tmp_path / "new" / "driftline_project.yml").read_text(encoding="utf-8")))
    validate(monitor_schema, as_editor_reads((tmp_path / "new" / "monitors" / "example_model.yml").read_text(encoding="utf-8")))
    validate(macros_schema, as_editor_reads((tmp_path / "new" / "macros" / "kpi.yml").read_text(encoding="utf-8")))


def test_init_points_each_file_at_its_schema_by_a_relative_path(tmp_path, monitor_schema, project_schema, macros_schema):
    """The path in the first line resolves, from the YAML file's own directory, to the schema."""
    scaffold(tmp_path)
    yaml_files = {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.yml")}
    expected = {"driftline_project.yml": project_schema, "monitors/example_model.yml": monitor_schema, "macros/kpi.yml": macros_schema}
    assert yaml_files == set(expected)
    for yaml_file, schema in expected.items():
        first_line = (tmp_path / yaml_file).read_text(encoding="utf-8").splitlines()[0]
        match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first_line)
        assert match, first_line
        target = (tmp_path / yaml_file).parent / match.group(1)
        assert json.loads(target.read_text(encoding="utf-8")) == schema


@pytest.mark.parametrize("written", ["2026-10-01", "2026-10-01T06:00:00Z", "2026-10-01 06:00", "2026-10-01T06:00:00.5+02:00"])
def test_dates_and_timestamps_are_accepted_as_driftline_reads_them(monitor_schema, written):
    document = as_editor_reads((ROOT / "monitors" / "lead_scoring.yml").read_text(encoding="utf-8"))
    document["reference"] = {"start": written, "end": "2026-12-01"}
    validate(monitor_schema, document)
    Monitor.model_validate(document)  # and driftline agrees


@pytest.mark.parametrize(
    "change",
    [
        {"reference": {"start": "last monday", "end": "2026-12-01"}},
        {"schedule": {"every": "daily"}},
        {"scheduel": {"every": "1d"}},
        {"checks": [{"drift": {"method": "psd"}}]},
        {"checks": [{"drfit": {}}]},
        {"source": {"table": "leads", "sql": "select * from leads", "timestamp": "scored_at"}},
        {"source": {"timestamp": "scored_at"}},
    ],
)
def test_what_driftline_refuses_the_schema_refuses_too(monitor_schema, change):
    document = {**as_editor_reads((ROOT / "monitors" / "lead_scoring.yml").read_text(encoding="utf-8")), **change}
    with pytest.raises(AssertionError):
        validate(monitor_schema, document)
    with pytest.raises(ValueError):
        Monitor.model_validate(document)


def properties(schema: dict):
    """Every (path, name, property schema) of every object in the schema, $defs included."""
    stack = [("", schema)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for name, value in (node.get("properties") or {}).items():
                yield path, name, value
            stack.extend((f"{path}/{key}", value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}/{i}", value) for i, value in enumerate(node))


def test_every_key_has_a_description(monitor_schema, project_schema, macros_schema):
    for schema in (monitor_schema, project_schema, macros_schema):
        missing = [f"{path}: {name}" for path, name, value in properties(schema) if not value.get("description")]
        assert not missing, missing


def literal_values(annotation) -> set:
    if typing.get_origin(annotation) is typing.Literal:
        return set(typing.get_args(annotation))
    return set().union(*(literal_values(a) for a in typing.get_args(annotation))) if typing.get_args(annotation) else set()


def enums_in(node) -> set:
    if isinstance(node, dict):
        found = set(node.get("enum", [])) | ({node["const"]} if "const" in node else set())
        return found.union(*(enums_in(v) for k, v in node.items() if k != "$defs"))
    if isinstance(node, list):
        return set().union(*(enums_in(v) for v in node))
    return set()


def models_of(model: type[BaseModel]) -> set[type[BaseModel]]:
    seen, stack = set(), [model]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for field in current.model_fields.values():
            stack.extend(arg for arg in _annotations(field.annotation) if isinstance(arg, type) and issubclass(arg, BaseModel))
    return seen


def _annotations(annotation):
    yield annotation
    for arg in typing.get_args(annotation):
        yield from _annotations(arg)


def test_every_fixed_set_of_values_is_an_enum(monitor_schema, project_schema):
    """Each key whose values pydantic takes from a fixed set lists that set (minus `type`, the
    check's key itself)."""
    checked = 0
    for root, schema in ((Monitor, monitor_schema), (ProjectFile, project_schema)):
        for model in models_of(root):
            definition = schema if model is root else schema["$defs"][model.__name__]
            for name, field in model.model_fields.items():
                values = literal_values(field.annotation)
                if not values or name == "type":
                    continue
                key = field.alias or name
                assert enums_in(definition["properties"][key]) >= values, f"{model.__name__}.{key}"
                checked += 1
    assert checked >= 10
    drift_methods = enums_in(monitor_schema["$defs"]["DriftCheck"]["properties"]["method"])
    assert drift_methods == set(metrics.names("drift"))


def test_schema_starts_without_the_warehouse_libraries():
    """`driftline schema` is fast because it never imports ibis or pandas (see cli.py)."""
    code = "import sys; from driftline.cli import main; main(['schema'])"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert not {name for name in imported if name.split(".")[0] in ("ibis", "pandas", "numpy", "duckdb")}
    assert json.loads(done.stdout)["title"] == "driftline monitor"
