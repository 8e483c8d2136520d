"""Values a target cannot hold are never altered: DataErrorPolicy decides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pyarrow.dataset as ds
import pytest

from opendms.config import task_from_dict
from opendms.errors import TaskError
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.integration.readback import read_mysql, read_sqlite
from tests.support.endpoints import target_url

SPECIALS = """
CREATE TABLE specials (id int PRIMARY KEY, f8 float8, ts timestamp, free numeric);
INSERT INTO specials VALUES
  (1, 1.5, '2024-01-01 00:00:00', 1.25),
  (2, 'NaN', '2024-01-01', 1),
  (3, 'Infinity', '2024-01-01', 1),
  (4, 1, 'infinity', 1),
  (5, 1, '2024-01-01', 'NaN'),
  (6, 1, '2024-01-01', 0.0000000000000000000000000000001);
"""
# Which rows each target can hold: MySQL has no NaN/Infinity and DECIMAL(65,30) at most;
# SQLite turns NaN into NULL; only PostgreSQL itself keeps 'infinity' timestamps.
LOADED = {
    "mysql": [1],
    "sqlite": [1, 3, 5, 6],
    "lake": [1, 2, 3, 5, 6],
    "pg": [1, 2, 3, 4, 5, 6],
}
REJECTED_COLUMNS = {
    "mysql": {2: "f8", 3: "f8", 4: "ts", 5: "free", 6: "free"},
    "sqlite": {2: "f8", 4: "ts"},
    "lake": {4: "ts"},
    "pg": {},
}


@pytest.fixture
def specials(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(SPECIALS)
    return pg_db


def _target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return target_url(kind, request, tmp_path)


def _ids(kind: str, url: str, tmp_path: Path) -> list[int]:
    rows: list[dict[str, Any]]
    if kind == "mysql":
        rows = read_mysql(url, url.rsplit("/", 1)[1], "specials", "id")
    elif kind == "pg":
        with psycopg.connect(url) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM specials ORDER BY id")]
    elif kind == "sqlite":
        rows = read_sqlite(str(tmp_path / "target.db"), "specials", "id")
    else:
        table = ds.dataset(str(tmp_path / "lake/public/specials")).to_table()
        rows = table.sort_by("id").to_pylist()
    return [int(r["id"]) for r in rows]


def _run(source: str, target: str, tmp_path: Path, policy: str) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    spec = task_from_dict(
        {
            "name": "specials",
            "source": source,
            "target": target,
            "task_settings": {"ErrorBehavior": {"DataErrorPolicy": policy}},
        },
        where="test",
    )
    run_task(spec, store)
    return store


def test_pg_keeps_infinity(specials: str, pg_target_db: str, tmp_path: Path) -> None:
    _run(specials, pg_target_db, tmp_path, "STOP_TASK")
    with psycopg.connect(pg_target_db) as conn:
        rows = conn.execute("SELECT id, f8::text, ts::text, free::text FROM specials ORDER BY id")
        got = rows.fetchall()
    assert got[1:5] == [
        (2, "NaN", "2024-01-01 00:00:00", "1"),
        (3, "Infinity", "2024-01-01 00:00:00", "1"),
        (4, "1", "infinity", "1"),
        (5, "1", "2024-01-01 00:00:00", "NaN"),
    ]
    assert got[5][3] == "0.0000000000000000000000000000001"


@pytest.mark.parametrize("kind", ["mysql", "sqlite", "lake", "pg"])
def test_log_error_skips_and_records_rows(
    specials: str, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = _target(kind, request, tmp_path)
    store = _run(specials, url, tmp_path, "LOG_ERROR")
    assert _ids(kind, url.split("?")[0], tmp_path) == LOADED[kind]
    stats = store.tables("specials")[0]
    assert stats.state is TableState.COMPLETED
    assert stats.full_load_rows == len(LOADED[kind])
    assert stats.error_rows == len(REJECTED_COLUMNS[kind])
    logged = {int(key.split("=")[1]): col for _, key, col, _ in store.data_errors("specials")}
    assert logged == REJECTED_COLUMNS[kind]


def test_ignore_record_skips_without_logging(
    specials: str, mysql_target_db: str, tmp_path: Path
) -> None:
    store = _run(specials, mysql_target_db, tmp_path, "IGNORE_RECORD")
    assert _ids("mysql", mysql_target_db, tmp_path) == [1]
    assert store.tables("specials")[0].error_rows == 5
    assert store.data_errors("specials") == []


@pytest.mark.parametrize("policy", ["SUSPEND_TABLE", "STOP_TASK"])
def test_suspend_table_fails_the_table(
    specials: str, mysql_target_db: str, tmp_path: Path, policy: str
) -> None:
    with pytest.raises(TaskError, match=r"specials.*column f8"):
        _run(specials, mysql_target_db, tmp_path, policy)
    store = StateStore(tmp_path / "state.db")
    stats = store.tables("specials")[0]
    assert stats.state is TableState.ERROR
    assert "f8" in stats.error
    task = store.task("specials")
    assert task is not None and task.status.value == "failed"


def test_source_values_without_a_canonical_form_are_row_errors(
    pg_db: str, mysql_db: str, tmp_path: Path
) -> None:
    """PostgreSQL numeric(p,s) 'NaN' is reported by row; MySQL TIME outside a day is a
    duration, carried as one (ISO 8601 text in the lake)."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE nums (id int PRIMARY KEY, n numeric(6,2))")
        conn.execute("INSERT INTO nums VALUES (1, 1.5), (2, 'NaN'), (3, -2.25)")
    store = _run(pg_db, f"file://{tmp_path}/lake?DataFormat=parquet", tmp_path, "LOG_ERROR")
    table = ds.dataset(str(tmp_path / "lake/public/nums")).to_table().sort_by("id")
    assert table.column("id").to_pylist() == [1, 3]
    assert [(k, c) for _, k, c, _ in store.data_errors("specials")] == [("id=2", "n")]

    from tests.integration.readback import mysql_connect

    conn2 = mysql_connect(mysql_db)
    with conn2.cursor() as cur:
        cur.execute("CREATE TABLE spans (id INT PRIMARY KEY, t TIME)")
        cur.execute("INSERT INTO spans VALUES (1, '10:00:00'), (2, '-01:00:00'), (3, '30:00:00')")
    conn2.commit()
    conn2.close()
    store = _run(mysql_db, f"file://{tmp_path}/lake2?DataFormat=parquet", tmp_path, "LOG_ERROR")
    db = mysql_db.rsplit("/", 1)[1]
    table = ds.dataset(str(tmp_path / f"lake2/{db}/spans")).to_table().sort_by("id")
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("t").to_pylist() == ["P0M0DT36000S", "P0M0DT-3600S", "P0M0DT108000S"]
    assert store.data_errors("specials") == []


def test_mysql_zero_dates_are_row_errors(mysql_db: str, tmp_path: Path) -> None:
    from tests.integration.readback import mysql_connect

    conn = mysql_connect(mysql_db)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("CREATE TABLE zd (id INT PRIMARY KEY, d DATE, ts DATETIME)")
        cur.execute(
            "INSERT INTO zd VALUES (1, '2024-02-29', '2024-01-02 03:04:05'), "
            "(2, '0000-00-00', '2024-01-01 00:00:00'), (3, '2024-01-01', '0000-00-00 00:00:00'), "
            "(4, '2024-00-10', NULL), (5, NULL, NULL)"
        )
    conn.commit()
    conn.close()
    store = _run(mysql_db, f"file://{tmp_path}/lake?DataFormat=parquet", tmp_path, "LOG_ERROR")
    db = mysql_db.rsplit("/", 1)[1]
    table = ds.dataset(str(tmp_path / f"lake/{db}/zd")).to_table().sort_by("id")
    assert table.column("id").to_pylist() == [1, 5]
    assert str(table.column("d")[0]) == "2024-02-29"
    logged = sorted((k, c) for _, k, c, _ in store.data_errors("specials"))
    assert logged == [("id=2", "d"), ("id=3", "ts"), ("id=4", "d")]
