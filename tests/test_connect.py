"""Connection URLs: DuckDB's resource settings travel in the URL, and nothing else does."""

from __future__ import annotations

import pytest

from driftline import connect
from driftline.errors import WarehouseError


def test_duckdb_settings_come_from_the_url(tmp_path):
    con = connect.connect("duckdb://w.duckdb?memory_limit=300MB&threads=1", tmp_path)
    limit, threads = con.con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone()
    assert (limit, threads) == ("286.1 MiB", 1)  # 300 MB, as DuckDB spells it back
    assert (tmp_path / "w.duckdb").exists()


def test_an_unknown_duckdb_option_is_one_line(tmp_path):
    with pytest.raises(WarehouseError) as caught:
        connect.connect("duckdb://w.duckdb?memory=1GB", tmp_path)
    assert "unknown option 'memory'; duckdb URLs take memory_limit, threads, temp_directory" in str(caught.value)
    assert not (tmp_path / "w.duckdb").exists()
