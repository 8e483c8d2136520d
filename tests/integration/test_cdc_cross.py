"""CDC between engines: after the changes, the target equals a fresh full load of the
source into the same engine (so CDC and full load carry every value the same way)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.engine.task import run_task
from opendms.state import StateStore
from opendms.testing.sql import connect, execute, query, table_rows

PG_SETUP = """
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2), qty bigint,
  ok boolean, born date, at timestamp, atz timestamptz, ratio double precision,
  raw bytea, doc jsonb, tags text[], span interval, code uuid);
INSERT INTO items SELECT g, 'item ' || g || ' ✓', g * 1.25, g * 1000000000::bigint, g % 2 = 0,
  date '2024-01-01' + g, timestamp '2024-01-01 10:00:00.123456' + g * interval '1 min',
  timestamptz '2024-01-01 10:00+02' + g * interval '1 hour', g / 7.0, '\\x00ff'::bytea,
  jsonb_build_object('g', g), ARRAY['a', g::text], g * interval '1 day 2 hours',
  md5(g::text)::uuid
  FROM generate_series(1, 50) g;
"""
PG_CHANGES = [
    "INSERT INTO items VALUES (100, 'new 😀', 99.99, -5, true, '1999-12-31', "
    "'2020-02-29 23:59:59.999999', '2020-02-29 23:59:59+05:30', 1e-300, '\\x', '{\"a\": [1]}',"
    " ARRAY[NULL, 'x'], '1 year 2 mons 3 days 04:05:06.5', gen_random_uuid())",
    "INSERT INTO items (id) VALUES (101)",
    "UPDATE items SET price = price * 2, name = NULL, doc = '{}' WHERE id <= 10",
    "UPDATE items SET id = 1000 WHERE id = 20",
    "DELETE FROM items WHERE id BETWEEN 30 AND 35",
    "BEGIN; UPDATE items SET qty = 1 WHERE id = 100; DELETE FROM items WHERE id = 101; COMMIT",
]


def _task(name: str, source: str, target: str, mtype: str) -> Any:
    return task_from_dict(
        {"name": name, "source": source, "target": target, "migration_type": mtype},
        where="test",
    )


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    return table_rows(url, table)


def _cdc_equals_full_load(
    source: str,
    target: str,
    reference: str,
    changes: list[str],
    run_changes: Any,
    tmp_path: Path,
    table: str,
) -> None:
    store = StateStore(tmp_path / "state.db")
    spec = _task("cdc", source, target, "full-load-and-cdc")
    run_task(spec, store)
    run_changes(changes)
    run_task(spec, store)
    run_task(_task("ref", source, reference, "full-load"), store)
    got, want = _rows(target, table), _rows(reference, table)
    assert len(got) == len(want) > 0
    assert got == want


def _pg_changes(url: str) -> Any:
    return lambda changes: execute(url, changes)


@pytest.fixture
def pg_source(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(PG_SETUP)
    return pg_db


def test_pg_to_sqlite(pg_source: str, tmp_path: Path) -> None:
    _cdc_equals_full_load(
        pg_source,
        f"sqlite:///{tmp_path}/t.db",
        f"sqlite:///{tmp_path}/ref.db",
        PG_CHANGES,
        _pg_changes(pg_source),
        tmp_path,
        "items",
    )


def test_pg_to_mysql(pg_source: str, mysql_db: str, mysql_target_db: str, tmp_path: Path) -> None:
    _cdc_equals_full_load(
        pg_source,
        mysql_db,
        mysql_target_db,
        PG_CHANGES,
        _pg_changes(pg_source),
        tmp_path,
        "items",
    )


MY_SETUP = [
    "CREATE TABLE items (id int PRIMARY KEY, name varchar(100), price decimal(12,2), "
    "qty bigint, ok tinyint(1), born date, at datetime(6), atz timestamp(6) NULL, "
    "ratio double, raw varbinary(20), doc json, size enum('s','m','l'), note text)",
    "INSERT INTO items SELECT seq, concat('item ', seq, ' ✓'), seq * 1.25, seq * 1000000000, "
    "seq % 2, '2024-01-01' + INTERVAL seq DAY, '2024-01-01 10:00:00.123456' + INTERVAL seq MINUTE,"
    " '2024-01-01 10:00:00' + INTERVAL seq HOUR, seq / 7, x'00ff', json_object('g', seq), "
    "'m', repeat('n', seq) FROM seq_1_to_50",
]
MY_CHANGES = [
    "INSERT INTO items VALUES (100, 'new 😀', 99.99, -5, 1, '1999-12-31', "
    "'2020-02-29 23:59:59.999999', '2020-02-29 23:59:59', 1e-300, '', '{\"a\": [1]}', 'l', NULL)",
    "INSERT INTO items (id) VALUES (101)",
    "UPDATE items SET price = price * 2, name = NULL, doc = '{}' WHERE id <= 10",
    "UPDATE items SET id = 1000 WHERE id = 20",
    "DELETE FROM items WHERE id BETWEEN 30 AND 35",
    "BEGIN; UPDATE items SET qty = 1 WHERE id = 100; DELETE FROM items WHERE id = 101; COMMIT",
]


def _my_changes(url: str) -> Any:
    def run(changes: list[str]) -> None:
        execute(url, [part for sql in changes for part in sql.split("; ")])

    return run


@pytest.fixture
def my_source(mysql_db: str) -> str:
    _my_changes(mysql_db)(MY_SETUP)
    return mysql_db


def test_mysql_to_postgres(my_source: str, pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    _cdc_equals_full_load(
        my_source, pg_db, pg_target_db, MY_CHANGES, _my_changes(my_source), tmp_path, "items"
    )


def test_mysql_to_sqlite(my_source: str, tmp_path: Path) -> None:
    _cdc_equals_full_load(
        my_source,
        f"sqlite:///{tmp_path}/t.db",
        f"sqlite:///{tmp_path}/ref.db",
        MY_CHANGES,
        _my_changes(my_source),
        tmp_path,
        "items",
    )


def test_mysql_to_mysql_with_ddl(my_source: str, mysql_target_db: str, tmp_path: Path) -> None:
    """DDL on the source is applied to the target and counted; the data follows it."""
    store = StateStore(tmp_path / "state.db")
    spec = _task("ddl", my_source, mysql_target_db, "full-load-and-cdc")
    run_task(spec, store)
    _my_changes(my_source)(
        [
            "ALTER TABLE items ADD COLUMN extra int",
            "UPDATE items SET extra = id * 2 WHERE id <= 5",
            "ALTER TABLE items DROP COLUMN note",
            "ALTER TABLE items CHANGE COLUMN qty quantity bigint",
            "ALTER TABLE items RENAME COLUMN name TO title",
            "ALTER TABLE items MODIFY price decimal(14,3)",
            "UPDATE items SET price = 1.125, title = 'after ddl' WHERE id = 3",
            "TRUNCATE TABLE items",
            "INSERT INTO items (id, title, extra) VALUES (7, 'again', 14)",
        ]
    )
    run_task(spec, store)
    got = _rows(mysql_target_db, "items")
    assert _rows(my_source, "items") == got
    conn = connect(mysql_target_db)
    columns = dict(
        query(
            conn,
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = database() AND table_name = 'items' ORDER BY ordinal_position",
        )
    )
    conn.close()
    assert "note" not in columns and "qty" not in columns and "name" not in columns
    assert columns["quantity"] == "bigint(20)" and columns["price"] == "decimal(14,3)"
    assert "extra" in columns and "title" in columns
    stats = {t.name: t for t in store.tables("ddl")}
    assert stats["items"].ddls == 6  # five ALTER TABLE and the TRUNCATE


def test_mysql_writes_during_full_load(my_source: str, pg_db: str, tmp_path: Path) -> None:
    """Writes racing the snapshot-less full load are repaired by the catch-up phase."""
    import threading

    run = _my_changes(my_source)
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            run(
                [
                    f"INSERT INTO items (id, name) VALUES ({5000 + i}, 'w{i}')",
                    f"UPDATE items SET qty = qty + 1, name = 'u{i}' WHERE id = {1 + i % 50}",
                    f"DELETE FROM items WHERE id = {5000 + i - 3}",
                ]
            )

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        store = StateStore(tmp_path / "state.db")
        spec = _task("race", my_source, pg_db, "full-load-and-cdc")
        run_task(spec, store)
    finally:
        stop.set()
        thread.join()
    run_task(spec, store)
    got = [(r[0], r[1], r[3]) for r in _rows(pg_db, "items")]
    want = [(r[0], r[1], r[3]) for r in _rows(my_source, "items")]
    assert got == want


def _binlog_position(url: str) -> str:
    from opendms.endpoints.mysql.capture import MySqlCapture

    capture = MySqlCapture(EndpointURL.parse(url), "probe")
    try:
        return str(capture.current_position())
    finally:
        capture.close()


def test_mysql_cdc_from_a_start_position_to_a_stop_position(
    my_source: str, pg_db: str, tmp_path: Path
) -> None:
    """A ``cdc`` task reads from CdcStartPosition (file:pos@gtid) and stops at
    CdcStopPosition; a second run without the stop position goes on from there."""
    store = StateStore(tmp_path / "state.db")
    run_task(_task("load", my_source, pg_db, "full-load"), store)
    start = _binlog_position(my_source)
    run = _my_changes(my_source)
    run(["UPDATE items SET name = 'first' WHERE id = 1"])
    stop = _binlog_position(my_source)
    run(["UPDATE items SET name = 'second' WHERE id = 2"])
    spec = {"name": "tail", "source": my_source, "target": pg_db, "migration_type": "cdc"}
    spec["task_settings"] = {"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}
    bounded = task_from_dict(
        {**spec, "CdcStartPosition": start, "CdcStopPosition": stop}, where="test"
    )
    run_task(bounded, store)
    names = {r[0]: r[1] for r in _rows(pg_db, "items")}
    assert names[1] == "first" and names[2] == "item 2 ✓"
    task = store.task("tail")
    assert task is not None and task.stop_reason == "STOP_POSITION_REACHED"
    run_task(task_from_dict(spec, where="test"), store)
    assert {r[0]: r[1] for r in _rows(pg_db, "items")}[2] == "second"


def test_mysql_to_lake_follows_ddl(my_source: str, tmp_path: Path) -> None:
    """Lake CDC files after a DDL use the new columns; read by the independent reader,
    they hold the exact Ops and, folded strictly by Op, the source's rows."""
    from tests.oracles.lake import read_lake

    lake = tmp_path / "lake"
    spec = _task("lake", my_source, f"file://{lake}", "full-load-and-cdc")
    spec = task_from_dict(
        {
            **spec.model_dump(by_alias=True, exclude_none=True),
            "target": {"url": f"file://{lake}", "settings": "DataFormat=parquet"},
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    _my_changes(my_source)(
        [
            "UPDATE items SET qty = 7 WHERE id = 1",
            "ALTER TABLE items ADD COLUMN extra varchar(10)",
            "UPDATE items SET extra = 'x' WHERE id <= 3",
            "ALTER TABLE items DROP COLUMN note",
            "INSERT INTO items (id, name, extra) VALUES (500, 'late', 'y')",
            "DELETE FROM items WHERE id = 2",
        ]
    )
    run_task(spec, store)
    schema = EndpointURL.parse(my_source).database
    items = read_lake(lake, "DataFormat=parquet", keys=["id"])[f"{schema}.items"]
    assert items.op_rows("id") == [("U", 1), ("U", 1), ("U", 2), ("U", 3), ("I", 500), ("D", 2)]
    assert [list(c.row) for c in items.changes][-2:] == [list(items.changes[-1].row)] * 2
    assert "note" not in items.changes[-1].row and items.changes[-1].row["extra"] == "x"
    rows = items.rows
    want = {r[0]: r for r in _rows(my_source, "items")}
    assert sorted(int(r["id"]) for r in rows) == sorted(want)
    got = {int(r["id"]): r for r in rows}
    assert got[1]["qty"] == 7 and got[3]["extra"] == "x" and got[500]["extra"] == "y"
    assert got[4].get("extra") is None and got[500]["name"] == "late"
    stats = {t.name: t for t in store.tables("lake")}
    assert stats["items"].ddls == 2


SQLITE_SETUP = [
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price DECIMAL(12,2), qty BIGINT, "
    "ok BOOLEAN, born DATE, at DATETIME, ratio REAL, raw BLOB)",
    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 50) "
    "INSERT INTO items SELECT n, 'item ' || n || ' ✓', n * 1.25, n * 1000000000, n % 2, "
    "date('2024-01-01', '+' || n || ' days'), datetime('2024-01-01 10:00:00', '+' || n || "
    "' minutes'), n / 7.0, x'00ff' FROM g",
]
SQLITE_CHANGES = [
    "INSERT INTO items VALUES (100, 'new 😀', 99.99, -5, 1, '1999-12-31', "
    "'2020-02-29 23:59:59', 1e-300, x'')",
    "INSERT INTO items (id) VALUES (101)",
    "UPDATE items SET price = price * 2, name = NULL WHERE id <= 10",
    "UPDATE items SET id = 1000 WHERE id = 20",
    "DELETE FROM items WHERE id BETWEEN 30 AND 35",
]


def test_sqlite_to_postgres(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        for sql in SQLITE_SETUP:
            conn.execute(sql)
    conn.close()

    def run(changes: list[str]) -> None:
        with sqlite3.connect(db) as conn:
            for sql in changes:
                conn.execute(sql)
        conn.close()

    _cdc_equals_full_load(
        f"sqlite:///{db}", pg_db, pg_target_db, SQLITE_CHANGES, run, tmp_path, "items"
    )
