"""The project: ``driftline_project.yml``, its monitors and macros, and the connection URL."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Mapping

from pydantic import Field, ValidationInfo, field_validator

from driftline.errors import ConfigError, ConfigErrors, Location, problems_of
from driftline.notify.receivers import EmailReceiver, TeamsReceiver, WebhookReceiver
from driftline.spec.loader import LoadedMonitor, load_monitor_file, validate_model
from driftline.spec.models import Strict
from driftline.spec.types import Duration
from driftline.spec.yaml_source import load_yaml

PROJECT_FILE = "driftline_project.yml"
CONNECTION_ENV = "DRIFTLINE_CONNECTION"


class SlackConfig(Strict):
    token: str | None = Field(None, description="Bot token for chat.postMessage, e.g. ${SLACK_BOT_TOKEN}.")
    webhook_url: str | None = Field(None, description="Or an incoming webhook URL, e.g. ${SLACK_WEBHOOK_URL}.")
    channel: str | None = Field(None, description="The default channel; a monitor's alerts.channel overrides it.")
    base_url: str | None = Field(None, description="Slack's API address; set only for a Slack-compatible server.")


class NotifyConfig(Strict):
    slack: SlackConfig | None = Field(None, description="Where alerts go in Slack.")
    # Named receivers that monitors route alerts to (`alerts.routes`), by kind.
    webhooks: dict[str, WebhookReceiver] = Field(default_factory=dict, description="generic JSON webhooks, by name")
    teams: dict[str, TeamsReceiver] = Field(default_factory=dict, description="Microsoft Teams incoming webhooks, by name")
    email: dict[str, EmailReceiver] = Field(default_factory=dict, description="email over SMTP, by name")


class ResultsConfig(Strict):
    schema_: str | None = Field(None, alias="schema", description="Where the result tables go; null: the connection's default.")


# DuckDB's spelling of a memory size: KB, MB, GB, TB count 1000s, KiB ... TiB 1024s, any case.
_MEMORY_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*([kmgt]i?b|b)\s*$", re.IGNORECASE)


class DuckDBConfig(Strict):
    """The resources an embedded DuckDB may use (``duckdb://`` connections only). An option of the
    same name in the connection URL wins: the URL is the narrower setting (one environment's
    ``DRIFTLINE_CONNECTION``, one ``--connection``) and the project file the shared one."""

    memory_limit: str | None = Field(
        None,
        description="DuckDB's memory_limit, e.g. 2GB or 1.5GiB: it also bounds DuckDB's cache of the database file, "
        "most of a run's memory; null: DuckDB's default, 80 % of RAM.",
    )
    threads: int | None = Field(None, ge=1, description="DuckDB's worker threads; null: DuckDB's default, one per core.")
    temp_directory: str | None = Field(
        None, description="Where DuckDB spills what exceeds memory_limit, relative to this file; null: DuckDB's default (next to the database file)."
    )

    @field_validator("memory_limit")
    @classmethod
    def _a_size(cls, size: str | None) -> str | None:
        if size is not None and not _MEMORY_SIZE.match(size):
            raise ValueError(f"memory_limit {size!r} is not a size: write a number and a unit, e.g. 2GB, 512MB or 1.5GiB")
        return size

    def settings(self, root: Path | None) -> dict[str, str]:
        """The settings given, as ``connect`` takes them; a relative temp_directory is under ``root``."""
        given = {k: v for k, v in self.model_dump().items() if v is not None}
        if "temp_directory" in given and root is not None:
            given["temp_directory"] = str(root / given["temp_directory"])
        return {k: str(v).strip() for k, v in given.items()}


class SparkConfig(Strict):
    """The Spark session driftline starts (``pyspark://local``, ``spark://``, ``sc://``). A URL
    option wins over the same key here, as for DuckDB."""

    warehouse: str | None = Field(
        None,
        description="Where pyspark://local and spark:// keep the tables and their catalog, relative to this file; "
        "null: spark-warehouse. On a cluster of several hosts, storage every host sees at the same path.",
    )
    conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Spark settings for the session, e.g. spark.executor.memory: 2g; a conf.<setting> option of the URL wins.",
    )

    def settings(self, root: Path | None) -> dict:
        """``warehouse`` (under ``root`` when relative) and ``conf`` as Spark reads it (text)."""
        warehouse = self.warehouse if self.warehouse is None or root is None else str(root / self.warehouse)
        return {"warehouse": warehouse, "conf": {key: _spark_text(value) for key, value in self.conf.items()}}


def _spark_text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


class DbtConfig(Strict):
    """The dbt project whose models and sources monitors may name (see driftline.dbt_project)."""

    project_dir: str = Field(description="The dbt project's directory, relative to this file; its target/manifest.json is read.")
    target: str | None = Field(None, description="The dbt target `connection: dbt` connects to; default: the profile's `target`.")


class ProjectFile(Strict):
    name: str = Field(description="The project's name.")
    connection: str = Field(
        "duckdb://warehouse.duckdb",
        description="The warehouse: an ibis URL (${ENV_VAR} is interpolated), or `dbt`: the dbt profile's target.",
    )
    results: ResultsConfig = Field(default_factory=ResultsConfig, description="Where driftline writes its result tables.")
    notify: NotifyConfig = Field(default_factory=NotifyConfig, description="Where alerts are sent.")
    report_url: str | None = Field(None, description="Where report.html is published; alerts link to it.")
    dbt: DbtConfig | None = Field(None, description="A dbt project: its models and sources as monitor sources, its profile as `connection: dbt`.")
    duckdb: DuckDBConfig = Field(default_factory=DuckDBConfig, description="DuckDB's memory_limit, threads and temp_directory (duckdb:// connections; a URL option of the same name wins).")
    spark: SparkConfig = Field(default_factory=SparkConfig, description="The warehouse and Spark settings of the Spark session driftline starts (a URL option of the same name wins).")
    # How long a monitor's lease outlives its holder's last sign of life (see driftline.leases):
    # longer than one window takes to evaluate, or a slow holder loses its lease mid-window.
    lease_ttl: Duration = Field("10m", validate_default=True, description="How long a monitor's lease outlives its holder's last sign of life.")
    # Every query of a window stops after this long and the window is an error: a runaway
    # source query (a cross join, a sleep) must not hold the run, or the warehouse, forever.
    query_timeout: Duration = Field("10m", validate_default=True, description="Every query of a window stops after this long; the window is then an error.")

    @field_validator("lease_ttl", "query_timeout")
    @classmethod
    def _positive(cls, duration: timedelta, info: ValidationInfo) -> timedelta:
        if duration <= timedelta(0):
            raise ValueError(f"{info.field_name} must be longer than 0s")
        return duration


@dataclass(frozen=True)
class Project:
    root: Path
    settings: ProjectFile
    connection: str
    monitors: dict[str, LoadedMonitor]
    macros: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def query_timeout(self):
        return self.settings.query_timeout

    @property
    def results_schema(self) -> str | None:
        return self.settings.results.schema_

    def select(self, names: list[str] | None) -> list[LoadedMonitor]:
        """The monitors named (all when ``names`` is empty), in file order."""
        if not names:
            return list(self.monitors.values())
        from driftline.spec.errors import did_you_mean

        unknown = [n for n in names if n not in self.monitors]
        if unknown:
            raise ConfigError(
                f"unknown monitor {unknown[0]!r}{did_you_mean(unknown[0], self.monitors)}; "
                f"monitors: {', '.join(self.monitors)}",
                Location(str(self.root / "monitors")),
            )
        return [self.monitors[n] for n in names]


def load_project(
    directory: str | Path = ".",
    connection: str | None = None,
    env: Mapping[str, str] | None = None,
    notify: bool = True,
) -> Project:
    """Read and validate a whole project; every problem found is reported at once.

    ``notify=False`` leaves the ``notify`` section unread, for commands that send nothing
    (``driftline report``): its ``${SLACK_BOT_TOKEN}`` need not be set where they run.
    """
    from driftline.macros import load_macros

    env = os.environ if env is None else env
    root = Path(directory).resolve()
    project_file = root / PROJECT_FILE
    if not project_file.is_file():
        raise ConfigError(
            f"no {PROJECT_FILE} here; run `driftline init {directory}` or pass --project DIR",
            Location(str(project_file)),
        )
    data, positions = load_yaml(project_file, env, leave_out=() if notify else ("notify",))
    settings = validate_model(ProjectFile, data or {}, positions)
    problems: list[ConfigError] = []
    monitors = _load_monitors(root, env, problems)
    if settings.dbt is not None or any(loaded.spec.source.dbt for loaded in monitors.values()):
        from driftline.dbt_project import resolve_dbt_sources

        monitors = resolve_dbt_sources(root, settings, positions, monitors, problems)
    if notify:
        from driftline.notify.routing import unknown_receivers

        problems.extend(unknown_receivers(settings.notify, monitors.values()))
    macros = {}
    try:
        macros = load_macros(sorted((root / "macros").glob("*.yml")))
    except ConfigError as error:
        problems.extend(problems_of(error))
    if problems:
        raise ConfigErrors(problems)
    url = connection or env.get(CONNECTION_ENV) or settings.connection
    if url == "dbt":
        from driftline.dbt_project import profile_connection

        url = profile_connection(root, settings, env, positions)
    return Project(root, settings, url, monitors, macros)


def _load_monitors(root: Path, env: Mapping[str, str], problems: list[ConfigError]) -> dict[str, LoadedMonitor]:
    monitors: dict[str, LoadedMonitor] = {}
    files = sorted((root / "monitors").glob("*.yml")) + sorted((root / "monitors").glob("*.yaml"))
    for file in files:
        try:
            loaded = load_monitor_file(file, env)
        except ConfigError as error:
            problems.extend(problems_of(error))
            continue
        for monitor in loaded:
            if monitor.name in monitors:
                problems.append(
                    ConfigError(f"duplicate monitor name {monitor.name!r}", monitor.positions.locate(("name",)))
                )
            monitors[monitor.name] = monitor
    return monitors
