"""Every source -> target pair moves the every-type table without altering a value."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from opendms.config import task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.integration import everything as ev
from tests.integration.readback import (
    normalise_rows,
    read_lake,
    read_lake_duckdb,
    read_mysql,
    read_postgres,
    read_sqlite,
    s3_filesystem,
)

SOURCES = ["pg", "mysql", "sqlite"]
TARGETS = ["pg", "mysql", "sqlite", "lake", "s3"]


@pytest.fixture
def source(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(engine, url, schema) of a source holding the every-type table."""
    engine = request.param
    if engine == "pg":
        url = request.getfixturevalue("pg_db")
        ev.create_pg(url)
        return engine, url, "public"
    if engine == "mysql":
        url = request.getfixturevalue("mysql_db")
        ev.create_mysql(url)
        return engine, url, url.rsplit("/", 1)[1]
    path = tmp_path / "source.db"
    ev.create_sqlite(str(path))
    return engine, f"sqlite:///{path}", "main"


def _target_url(target: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if target == "pg":
        return str(request.getfixturevalue("pg_target_db"))
    if target == "mysql":
        return str(request.getfixturevalue("mysql_target_db"))
    if target == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    if target == "s3":
        return str(request.getfixturevalue("s3_url"))
    return f"file://{tmp_path / 'lake'}"


def _read_target(target: str, url: str, schema: str, tmp_path: Path) -> list[dict[str, Any]]:
    if target == "pg":
        return read_postgres(url, schema, "everything", "id")
    if target == "mysql":
        return read_mysql(url, url.rsplit("/", 1)[1], "everything", "id")
    if target == "sqlite":
        return read_sqlite(str(tmp_path / "target.db"), "everything", "id")
    if target == "s3":
        fs, root = s3_filesystem(url)
        return read_lake(fs, f"{root}/{schema}/everything", "id")
    folder = str(tmp_path / "lake" / schema / "everything")
    rows = read_lake(pafs.LocalFileSystem(), folder, "id")
    assert rows == read_lake_duckdb(f"{folder}/*.parquet", "id")
    return rows


def _same(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        for name, value in want.items():
            assert _equal(got[name], value), (
                f"row {want['id']} column {name}: {got[name]!r} != {value!r}"
            )


def _equal(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        if math.isnan(want):
            return math.isnan(got)
        return got == want
    return bool(got == want)


def _run(name: str, source: str, target: str, tmp_path: Path, **settings: Any) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    spec = task_from_dict(
        {
            "name": name,
            "source": source,
            "target": {"url": target, "settings": settings} if settings else target,
            "task_settings": {"ErrorBehavior": {"DataErrorPolicy": "STOP_TASK"}},
        },
        where="test",
    )
    run_task(spec, store)
    return store


@pytest.mark.parametrize("source", SOURCES, indirect=True)
@pytest.mark.parametrize("target", TARGETS)
def test_every_value_arrives(
    source: tuple[str, str, str], target: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    engine, src_url, schema = source
    url = _target_url(target, request, tmp_path)
    settings = {"DataFormat": "parquet"} if target in ("lake", "s3") else {}
    store = _run("matrix", src_url, url, tmp_path, **settings)
    stats = {t.name: t for t in store.tables("matrix")}
    assert stats["everything"].state is TableState.COMPLETED
    assert stats["everything"].full_load_rows == len(ev.ROWS)
    target_schema = schema if target != "sqlite" else "main"
    rows = _read_target(target, url, target_schema, tmp_path)
    kinds = ev.kinds(engine)
    _same(normalise_rows(rows, kinds), normalise_rows(ev.expected(engine), kinds))
