"""A loaded project connected to its warehouse, with its result store: what every command
works on (``api``, ``compile``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ibis

from driftline import connect
from driftline.bind import BoundMonitor, bind_monitor
from driftline.errors import ConfigError, ConfigErrors, problems_of
from driftline.project import Project, load_project
from driftline.runner import WindowEvaluator
from driftline.store import ResultStore


@dataclass
class Workspace:
    """A loaded project connected to its warehouse, with its result store ready."""

    project: Project
    con: ibis.BaseBackend
    store: ResultStore

    @classmethod
    def open(cls, project: str | Path = ".", connection: str | None = None) -> Workspace:
        loaded = load_project(project, connection)
        con = connect.connect(
            loaded.connection, loaded.root, duckdb=loaded.settings.duckdb.settings(loaded.root), spark=loaded.settings.spark.settings(loaded.root)
        )
        return cls(loaded, con, ResultStore(con, loaded.results_schema))

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the warehouse connection, so the same process can open the file again in
        another mode (DuckDB refuses a read-only connection beside a writable one). A Spark
        session stays: it belongs to the process, and closing ibis's backend would stop it."""
        if self.con.name != "pyspark":
            self.con.disconnect()

    def bind(self, names: Sequence[str] | None = None, dialect: str | None = None) -> list[BoundMonitor]:
        bound, problems = [], []
        for loaded in self.project.select(list(names or [])):
            try:
                bound.append(bind_monitor(loaded, self.con, self.project.macros, dialect))
            except ConfigError as error:
                problems.extend(problems_of(error))
        if problems:
            raise ConfigErrors(problems)
        return bound

    def evaluator(self, monitor: BoundMonitor) -> WindowEvaluator:
        evaluator = WindowEvaluator(monitor.plan, self.store, monitor.source_fingerprint)
        evaluator.measurer.query_timeout = self.project.query_timeout
        return evaluator
