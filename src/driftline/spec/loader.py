"""Monitor files → validated ``Monitor`` models, each remembering where its keys are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from driftline.errors import ConfigError, ConfigErrors
from driftline.spec.errors import translate
from driftline.spec.models import Monitor
from driftline.spec.yaml_source import Positions, load_yaml


@dataclass(frozen=True)
class LoadedMonitor:
    """A monitor and the positions of its keys, for errors found after parsing."""

    spec: Monitor
    positions: Positions

    @property
    def name(self) -> str:
        return self.spec.name


def validate_model(model: type[BaseModel], data: Any, positions: Positions) -> Any:
    """``model.model_validate(data)`` with errors located in the YAML file."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigErrors(translate(error, model, positions)) from None


def load_monitor_file(file: Path, env: Mapping[str, str] | None = None) -> list[LoadedMonitor]:
    """A file holds one monitor (a mapping) or several (a list of mappings)."""
    data, positions = load_yaml(file, env)
    if isinstance(data, dict):
        documents = [(data, positions)]
    elif isinstance(data, list):
        documents = [(item, positions.child((i,))) for i, item in enumerate(data)]
    else:
        raise ConfigError("expected a monitor (a mapping) or a list of monitors", positions.locate(()))
    loaded, problems = [], []
    for document, where in documents:
        try:
            loaded.append(LoadedMonitor(validate_model(Monitor, document, where), where))
        except ConfigErrors as errors:
            problems.extend(errors.errors)
    if problems:
        raise ConfigErrors(problems)
    return loaded
