"""The README's Python code runs as written, in a project like the demo's (its monitors, a small
warehouse of the demo's data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from driftline import demo
from driftline.demo_data import build_demo_warehouse

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


@pytest.fixture
def demo_project(tmp_path, monkeypatch):
    demo.prepare_project(tmp_path)
    build_demo_warehouse(tmp_path / "warehouse.duckdb", rows=20_000)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    return tmp_path


def test_the_readme_has_python_code():
    assert python_blocks()


@pytest.mark.parametrize("block", python_blocks())
def test_each_python_block_runs(demo_project, block):
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - the README's own code
    if "summary" in namespace:
        summary = namespace["summary"]
        assert summary.exit_code in (0, 1, 2)
        assert list(namespace["results"].columns)[:3] == ["run_id", "monitor", "check_name"]
    if "report(" in block:
        assert (demo_project / "report.html").stat().st_size > 0



def test_the_api_functions_stay_functions_once_every_module_is_loaded():
    """A submodule named like an API function would replace it on the package when imported."""
    import importlib
    import inspect
    import pkgutil

    import driftline

    for module in pkgutil.walk_packages(driftline.__path__, "driftline."):
        importlib.import_module(module.name)
    for name in ("run", "backfill", "validate", "compile", "report"):
        assert inspect.isfunction(getattr(driftline, name)), name
