"""dbt, where a team's models and tables are defined: read, never imported.

Three things, each from the files dbt itself writes or reads:

- a monitor's ``source: {dbt: lead_predictions}`` (or ``ref('lead_predictions')``,
  ``source('crm', 'leads')``) is the relation dbt built for that model or declared for that
  source — database, schema and alias, not the model's name — looked up in
  ``<dbt.project_dir>/target/manifest.json``, which ``dbt parse``, ``dbt build`` or ``dbt run``
  write;
- ``connection: dbt`` is the connection of the dbt profile's target (duckdb and postgres
  profiles), from ``profiles.yml`` where dbt looks for it: ``$DBT_PROFILES_DIR``, the dbt project
  directory, ``~/.dbt``; the ``{{ env_var('NAME', 'default') }}`` in it are read as dbt would;
- ``driftline dbt-sources`` writes a dbt ``sources:`` file describing driftline's result tables
  and views, so that dbt docs, lineage and BI tools built on dbt see them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from driftline.errors import ConfigError, Location
from driftline.spec.errors import did_you_mean
from driftline.spec.yaml_source import Positions

MANIFEST = Path("target") / "manifest.json"

# `lead_predictions`, `ref('lead_predictions')`, `ref('package', 'lead_predictions')`,
# `source('crm', 'leads')`: the forms a dbt user writes, with either quote.
_NAME = r"""\s*(['"])([^'"]+)\1\s*"""
_REF = re.compile(rf"^\s*ref\({_NAME}(?:,{_NAME})?\)\s*$")
_SOURCE = re.compile(rf"^\s*source\({_NAME},{_NAME}\)\s*$")
_BARE = re.compile(r"^\s*([A-Za-z_][\w]*)\s*$")


@dataclass(frozen=True)
class DbtName:
    """What a monitor names: a model (``package`` optional) or a source table."""

    kind: str  # "model" or "source"
    name: str
    package: str | None = None
    source: str | None = None

    def __str__(self) -> str:
        if self.kind == "source":
            return f"source('{self.source}', '{self.name}')"
        return f"ref('{self.package}', '{self.name}')" if self.package else self.name


def parse_dbt_name(text: str) -> DbtName:
    """What ``source.dbt`` names.

    >>> parse_dbt_name("source('crm', 'leads')")
    DbtName(kind='source', name='leads', package=None, source='crm')
    >>> parse_dbt_name("ref('analytics', 'scores')").package
    'analytics'
    """
    if match := _BARE.match(text):
        return DbtName("model", match.group(1))
    if match := _REF.match(text):
        if match.group(4):
            return DbtName("model", match.group(4), package=match.group(2))
        return DbtName("model", match.group(2))
    if match := _SOURCE.match(text):
        return DbtName("source", match.group(4), source=match.group(2))
    raise ValueError(f"{text!r} is not a dbt model or source; write a model's name, ref('model') or source('source_name', 'table_name')")


# -- the manifest: models and sources to relations ----------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """The relations of a dbt project's models (and seeds, snapshots) and sources."""

    path: Path
    models: Mapping[tuple[str, str], str]  # (package, name) → database.schema.alias
    sources: Mapping[tuple[str, str], str]  # (source name, table name) → database.schema.identifier

    def relation(self, wanted: DbtName) -> str:
        """The relation named, or LookupError naming the closest ones."""
        if wanted.kind == "source":
            found = self.sources.get((wanted.source, wanted.name))
            known = [str(DbtName("source", name, source=source)) for source, name in self.sources]
        else:
            matches = [relation for (package, name), relation in self.models.items() if name == wanted.name and wanted.package in (None, package)]
            found = matches[0] if len(matches) == 1 else None
            if len(matches) > 1:
                raise LookupError(f"dbt model {wanted.name!r} is in several packages; write ref('package', '{wanted.name}')")
            known = sorted({name for _, name in self.models})
        if found is None:
            kind = "source" if wanted.kind == "source" else "model"
            close = did_you_mean(str(wanted) if wanted.kind == "source" else wanted.name, known)
            raise LookupError(f"dbt {kind} {str(wanted)!r} is not in {self.path}{close}")
        return found


def load_manifest(project_dir: Path, location: Location) -> Manifest:
    """``target/manifest.json``; missing or unreadable, a ConfigError at ``location``."""
    path = project_dir / MANIFEST
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no dbt manifest at {path}; run `dbt parse` (or `dbt build`) in {project_dir} first", location) from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the dbt manifest {path}: {error}", location) from None
    models = {
        (node["package_name"], node["name"]): _relation(node.get("database"), node.get("schema"), node.get("alias") or node["name"])
        for node in document.get("nodes", {}).values()
        if node.get("resource_type") in ("model", "seed", "snapshot")
    }
    sources = {
        (node["source_name"], node["name"]): _relation(node.get("database"), node.get("schema"), node.get("identifier") or node["name"])
        for node in document.get("sources", {}).values()
    }
    return Manifest(path, models, sources)


def _relation(database: str | None, schema: str | None, name: str) -> str:
    """``database.schema.name`` as a monitor's ``source.table`` is written (parts that dbt left
    empty are left out)."""
    return ".".join(part for part in (database, schema, name) if part)


def resolve_dbt_sources(root: Path, settings: Any, positions: Positions, monitors: dict, problems: list[ConfigError]) -> dict:
    """Each monitor whose source names a dbt model or source, with ``source.table`` filled in.
    A problem of a monitor is added to ``problems``; that monitor is left out."""
    named = {name: loaded for name, loaded in monitors.items() if loaded.spec.source.dbt is not None}
    if not named:
        return monitors
    if settings.dbt is None:
        for loaded in named.values():
            where = loaded.positions.locate(("source", "dbt"))
            problems.append(ConfigError("source.dbt needs the dbt project: add `dbt: {project_dir: ...}` to driftline_project.yml", where))
        return {name: loaded for name, loaded in monitors.items() if name not in named}
    try:
        manifest = load_manifest(root / settings.dbt.project_dir, positions.locate(("dbt", "project_dir")))
    except ConfigError as error:
        problems.append(error)
        return {name: loaded for name, loaded in monitors.items() if name not in named}
    resolved = dict(monitors)
    for name, loaded in named.items():
        where = loaded.positions.locate(("source", "dbt"))
        try:
            table = manifest.relation(parse_dbt_name(loaded.spec.source.dbt))
        except (ValueError, LookupError) as error:
            problems.append(ConfigError(f"source.dbt: {error}", where))
            del resolved[name]
            continue
        spec = loaded.spec.model_copy(update={"source": loaded.spec.source.model_copy(update={"table": table})})
        resolved[name] = type(loaded)(spec, loaded.positions)
    return resolved


# -- profiles.yml: connection: dbt ---------------------------------------------------------------

# {{ env_var('NAME') }} or {{ env_var('NAME', 'default') }}, with dbt's as_text/as_number/as_bool
# filters (which only change the YAML type dbt sees; a URL is text either way).
_ENV_VAR = re.compile(r"""\{\{\s*env_var\(\s*(['"])(\w+)\1\s*(?:,\s*(['"])(.*?)\3\s*)?\)\s*(?:\|\s*as_\w+\s*)?\}\}""")


def profile_connection(root: Path, settings: Any, env: Mapping[str, str], positions: Positions) -> str:
    """The connection URL of the dbt profile's target, for a duckdb or postgres profile."""
    where = positions.locate(("connection",))
    if settings.dbt is None:
        raise ConfigError("connection: dbt needs the dbt project: add `dbt: {project_dir: ...}` to driftline_project.yml", where)
    project_dir = root / settings.dbt.project_dir
    profile_name = _profile_name(project_dir, where)
    profiles = _profiles_file(project_dir, env, where)
    profile = _read_yaml(profiles, where).get(profile_name)
    if not isinstance(profile, dict):
        raise ConfigError(f"{profiles} has no profile {profile_name!r} (named in {project_dir / 'dbt_project.yml'})", where)
    target_name = settings.dbt.target or _expand(str(profile.get("target", "")), env, _line_of(profiles, (profile_name, "target")))
    outputs = profile.get("outputs") or {}
    output = outputs.get(target_name)
    if not isinstance(output, dict):
        message = f"profile {profile_name!r} in {profiles} has no target {target_name!r}{did_you_mean(target_name, outputs)}"
        raise ConfigError(message, positions.locate(("dbt", "target")) if settings.dbt.target else where)
    output = {key: _expand(str(value), env, _line_of(profiles, (profile_name, "outputs", target_name, key))) for key, value in output.items()}
    kind = output.get("type")
    if kind == "duckdb":
        path = output.get("path", ":memory:")
        # dbt opens a relative path from the directory it runs in: the dbt project's.
        return "duckdb://" + (path if path == ":memory:" else str((project_dir / path).resolve()))
    if kind == "postgres":
        user = quote(output.get("user", ""), safe="")
        password = output.get("password") or output.get("pass") or ""
        credentials = f"{user}:{quote(password, safe='')}@" if password else f"{user}@"
        database = output.get("dbname") or output.get("database") or ""
        ssl = f"?sslmode={output['sslmode']}" if output.get("sslmode") else ""
        return f"postgres://{credentials}{output.get('host', 'localhost')}:{output.get('port', 5432)}/{database}{ssl}"
    raise ConfigError(f"connection: dbt reads duckdb and postgres profiles; target {target_name!r} of {profiles} is {kind!r}: write its ibis URL in `connection:`", where)


def _profile_name(project_dir: Path, where: Location) -> str:
    project_file = project_dir / "dbt_project.yml"
    if not project_file.is_file():
        raise ConfigError(f"no dbt_project.yml in {project_dir}; dbt.project_dir names the dbt project's directory", where)
    name = _read_yaml(project_file, where).get("profile")
    if not name:
        raise ConfigError(f"{project_file} names no `profile:`", where)
    return str(name)


def _profiles_file(project_dir: Path, env: Mapping[str, str], where: Location) -> Path:
    """Where dbt looks for profiles.yml, in dbt's order."""
    places = [Path(env["DBT_PROFILES_DIR"])] if env.get("DBT_PROFILES_DIR") else []
    places += [project_dir, Path.home() / ".dbt"]
    for place in places:
        if (place / "profiles.yml").is_file():
            return place / "profiles.yml"
    raise ConfigError(f"no profiles.yml in {', '.join(map(str, places))} (DBT_PROFILES_DIR, the dbt project, ~/.dbt)", where)


def _read_yaml(path: Path, where: Location) -> dict:
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read {path}: {str(error).splitlines()[0]}", where) from None
    return document if isinstance(document, dict) else {}


def _line_of(path: Path, keys: tuple[str, ...]) -> Location:
    """Where the value at ``keys`` is in a YAML file (the file itself when it cannot be found)."""
    import yaml

    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return Location(str(path))
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return Location(str(path))
        node = next((value for name, value in node.value if name.value == key), None)
        if node is None:
            return Location(str(path))
    return Location(str(path), node.start_mark.line + 1, node.start_mark.column + 1)


def _expand(text: str, env: Mapping[str, str], where: Location) -> str:
    def value(match: re.Match) -> str:
        name, default = match.group(2), match.group(4)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"env_var('{name}') is not set and has no default; set it as for dbt", where)

    expanded = _ENV_VAR.sub(value, text)
    if "{{" in expanded or "{%" in expanded:
        raise ConfigError(f"only {{{{ env_var(...) }}}} is read in profiles.yml; cannot read {text!r}", where)
    return expanded


# -- driftline dbt-sources -----------------------------------------------------------------------

SOURCE_NAME = "driftline"


def sources_yaml(schema: str | None, database: str | None = None) -> str:
    """A dbt ``sources:`` file of driftline's result tables and views, every column described."""
    import yaml

    from driftline import result_schema, views

    tables = [(name, result_schema.TABLE_DESCRIPTIONS[name], list(result_schema.TABLES[name]), result_schema.COLUMN_DESCRIPTIONS[name])
              for name in result_schema.TABLE_DESCRIPTIONS]
    for name, columns in _view_columns().items():
        about, descriptions = views.descriptions(name)
        tables.append((name, about, columns, descriptions))
    source: dict[str, Any] = {"name": SOURCE_NAME, "description": "driftline's result tables and views: model monitoring results (SPEC §5)"}
    if database:
        source["database"] = database
    if schema:
        source["schema"] = schema
    source["tables"] = [
        {"name": name, "description": about, "columns": [{"name": column, "description": descriptions[column]} for column in columns]}
        for name, about, columns, descriptions in tables
    ]
    header = "# Written by `driftline dbt-sources`: driftline's result tables and views. Write it again after upgrading driftline.\n"
    return header + yaml.safe_dump({"version": 2, "sources": [source]}, sort_keys=False, allow_unicode=True, width=100)


def _view_columns() -> dict[str, list[str]]:
    """The views' columns in order, as the views build them (over empty tables in memory)."""
    import ibis

    from driftline import result_schema, views

    con = ibis.duckdb.connect()
    for name, schema in result_schema.TABLES.items():
        con.create_table(name, schema=schema)
    builders = {views.LATEST: views.latest_results, views.OPEN_ALERTS: views.open_alerts, views.CHECK_HISTORY: views.check_history}
    return {name: list(builders[name](con).columns) for name in views.VIEWS}


def results_schema_of(project: Any) -> str | None:
    """Where a project's result tables are: ``results.schema``, else the connection's default
    schema (DuckDB's ``main``, PostgreSQL's ``public``); None when driftline cannot tell."""
    if project.results_schema:
        return project.results_schema
    if project.connection.startswith("duckdb:"):
        return "main"
    if project.connection.startswith(("postgres:", "postgresql:")):
        return "public"
    return None
