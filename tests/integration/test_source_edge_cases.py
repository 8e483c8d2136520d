"""Source edge cases: partitions lists, range segments with NULL keys, SQLite booleans
and JSON, jsonb numbers and decimal text."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq
import pytest

from opendms.config import task_from_dict
from opendms.endpoints.sqlite.types import from_declared, to_declared
from opendms.errors import TaskError
from opendms.model import Kind, T
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.integration.readback import mysql_connect

ALL = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "all",
    "object-locator": {"schema-name": "%", "table-name": "%"},
    "rule-action": "include",
}


def _run(tmp_path: Path, source: str, target: str | dict[str, str], **extra: Any) -> StateStore:
    spec = task_from_dict({"name": "t", "source": source, "target": target, **extra}, where="test")
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    return store


def _parallel(schema: str, table: str, parallel: dict[str, Any]) -> dict[str, Any]:
    settings = {
        "rule-type": "table-settings",
        "rule-id": "2",
        "rule-name": "p",
        "object-locator": {"schema-name": schema, "table-name": table},
        "parallel-load": parallel,
    }
    return {"rules": [ALL, settings]}


def _sqlite(path: Path, *statements: str) -> str:
    with sqlite3.connect(path) as conn:
        for sql in statements:
            conn.execute(sql)
    return f"sqlite:///{path}"


def _lake_rows(lake: Path) -> list[dict[str, Any]]:
    return [r for f in sorted(lake.rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]


# -- 1. partitions-list ------------------------------------------------------


def test_sqlite_partitions_list_fails_the_table_clearly(tmp_path: Path) -> None:
    src = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE t (id INTEGER, v TEXT)",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
    )
    parts = _parallel("main", "t", {"type": "partitions-list", "partitions": ["p1", "p2"]})
    lake = tmp_path / "lake"
    with pytest.raises(TaskError, match="SQLite tables have no partitions"):
        _run(tmp_path, src, f"file://{lake}", table_mappings=parts)
    (stats,) = StateStore(tmp_path / "state.db").tables("t")
    assert stats.state is TableState.ERROR
    assert "$.table_mappings" in stats.error and "main.t" in stats.error
    assert "\n" not in stats.error
    assert _lake_rows(lake) == []


def test_mysql_partitions_list_reads_each_partition_once(mysql_db: str, tmp_path: Path) -> None:
    conn = mysql_connect(mysql_db)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE p (id INT PRIMARY KEY) PARTITION BY RANGE (id) "
            "(PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN MAXVALUE)"
        )
        cur.execute("INSERT INTO p VALUES (1), (2), (20)")
    conn.commit()
    conn.close()
    schema = mysql_db.rsplit("/", 1)[1]
    parts = _parallel(schema, "p", {"type": "partitions-list", "partitions": ["p0", "p1"]})
    lake = tmp_path / "lake"
    target = {"url": f"file://{lake}", "settings": "DataFormat=parquet"}
    store = _run(tmp_path, mysql_db, target, table_mappings=parts)
    assert sorted(r["id"] for r in _lake_rows(lake)) == [1, 2, 20]
    assert store.tables("t")[0].full_load_rows == 3


# -- 2. range segments and NULL keys -----------------------------------------

_NULL_KEYS = [(i, None if i % 3 == 0 else i) for i in range(12)]
_COMPOSITE = [(1, None), (1, 5), (2, None), (3, 3), (None, 1), (None, None), (0, 0)]


def _check_ranges(tmp_path: Path, source: str, schema: str) -> None:
    ranges = {"type": "ranges", "columns": ["k"], "boundaries": [["4"], ["8"]]}
    mappings = _parallel(schema, "t", ranges)
    lake = tmp_path / "lake"
    target = {"url": f"file://{lake}", "settings": "DataFormat=parquet"}
    _run(tmp_path, source, target, table_mappings=mappings)
    got = sorted((r["id"], r["k"]) for r in _lake_rows(lake))
    assert got == _NULL_KEYS


def test_sqlite_range_segments_keep_null_keys(tmp_path: Path) -> None:
    values = ", ".join(f"({i}, {'NULL' if k is None else k})" for i, k in _NULL_KEYS)
    src = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE t (id INTEGER, k INTEGER)",
        f"INSERT INTO t VALUES {values}",
    )
    _check_ranges(tmp_path, src, "main")


def test_sqlite_composite_range_segments_read_null_parts_once(tmp_path: Path) -> None:
    values = ", ".join(
        "(" + ", ".join("NULL" if v is None else str(v) for v in row) + ")" for row in _COMPOSITE
    )
    src = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE u (a INTEGER, b INTEGER)",
        f"INSERT INTO u VALUES {values}",
    )
    ranges = {"type": "ranges", "columns": ["a", "b"], "boundaries": [["1", "2"], ["2", "0"]]}
    dst = tmp_path / "dst.db"
    _run(tmp_path, src, f"sqlite:///{dst}", table_mappings=_parallel("main", "u", ranges))
    with sqlite3.connect(dst) as conn:
        got = conn.execute("SELECT a, b FROM u").fetchall()
    key = lambda r: tuple((v is None, v or 0) for v in r)  # noqa: E731
    assert sorted(got, key=key) == sorted(_COMPOSITE, key=key)


def test_postgres_range_segments_keep_null_keys(pg_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, k int)")
        for row in _NULL_KEYS:
            conn.execute("INSERT INTO t VALUES (%s, %s)", row)
    _check_ranges(tmp_path, pg_db, "public")


def test_mysql_range_segments_keep_null_keys(mysql_db: str, tmp_path: Path) -> None:
    conn = mysql_connect(mysql_db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT, k INT)")
        cur.executemany("INSERT INTO t VALUES (%s, %s)", _NULL_KEYS)
    conn.commit()
    conn.close()
    _check_ranges(tmp_path, mysql_db, mysql_db.rsplit("/", 1)[1])


# -- 3. SQLite booleans --------------------------------------------------------


def test_sqlite_boolean_text_values(tmp_path: Path) -> None:
    rows = [
        (1, "false"), (2, "f"), (3, "0"), (4, 0), (5, 1), (6, "TRUE"),
        (7, "Yes"), (8, "n"), (9, "t"), (10, "maybe"), (11, None),
    ]  # fmt: skip
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, flag BOOLEAN)")
        conn.executemany("INSERT INTO b VALUES (?, ?)", rows)
    dst = tmp_path / "dst.db"
    settings = {"ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}}
    store = _run(tmp_path, f"sqlite:///{src}", f"sqlite:///{dst}", task_settings=settings)
    with sqlite3.connect(dst) as conn:
        got = dict(conn.execute("SELECT id, flag FROM b").fetchall())
    want = {1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 1, 7: 1, 8: 0, 9: 1, 11: None}
    assert got == want
    assert [(key, col) for _, key, col, _ in store.data_errors("t")] == [("id=10", "flag")]


# -- 4. JSON into SQLite -------------------------------------------------------


def test_sqlite_json_declared_with_text_affinity() -> None:
    assert to_declared(T(Kind.JSON)) == "JSON_TEXT"
    assert to_declared(T(Kind.ARRAY, element=T(Kind.INT32))) == "JSON_TEXT"
    assert from_declared("JSON_TEXT").kind is Kind.JSON
    assert from_declared("json").kind is Kind.JSON


def test_jsonb_numbers_keep_their_text_in_sqlite(pg_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE j (id int PRIMARY KEY, doc jsonb, a int[])")
        conn.execute(
            "INSERT INTO j VALUES (1, '1.50', '{1,2}'), (2, '12345678901234567890123', NULL)"
        )
    dst = tmp_path / "dst.db"
    _run(tmp_path, pg_db, f"sqlite:///{dst}")
    with sqlite3.connect(dst) as conn:
        got = conn.execute("SELECT id, doc, typeof(doc), typeof(a) FROM j ORDER BY id").fetchall()
    assert got == [(1, "1.50", "text", "text"), (2, "12345678901234567890123", "text", "null")]
    copy = tmp_path / "copy.db"  # and a SQLite copy of it still sees JSON
    (tmp_path / "state.db").unlink()
    _run(tmp_path, f"sqlite:///{dst}", f"sqlite:///{copy}")
    with sqlite3.connect(copy) as conn:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'j'").fetchone()[0]
        assert conn.execute("SELECT doc FROM j ORDER BY id").fetchall() == [
            ("1.50",),
            ("12345678901234567890123",),
        ]
    assert '"doc" JSON_TEXT' in ddl


# -- 5. decimals as fixed-point text -------------------------------------------

_DECIMALS = [(1, "0.0000000001"), (2, "0"), (3, "-0.00000012"), (4, "12.5"), (5, None)]
_FIXED = ["0.0000000001", "0.0000000000", "-0.0000001200", "12.5000000000", None]


def _decimal_source(tmp_path: Path) -> str:
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, n DECIMAL_TEXT(20,10))")
        conn.executemany("INSERT INTO d VALUES (?, ?)", _DECIMALS)
    return f"sqlite:///{src}"


def test_decimals_into_sqlite_are_fixed_point(tmp_path: Path) -> None:
    dst = tmp_path / "dst.db"
    _run(tmp_path, _decimal_source(tmp_path), f"sqlite:///{dst}")
    with sqlite3.connect(dst) as conn:
        got = [r[0] for r in conn.execute("SELECT n FROM d ORDER BY id")]
    assert got == _FIXED


def test_decimals_in_csv_lake_are_fixed_point(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    target = {"url": f"file://{lake}", "settings": "DataFormat=csv;CsvNullValue=NULL"}
    _run(tmp_path, _decimal_source(tmp_path), target)
    (path,) = lake.rglob("*.csv")
    with path.open(newline="") as f:
        got = [row[1] for row in sorted(csv.reader(f), key=lambda r: int(r[0]))]
    assert got == [v if v is not None else "NULL" for v in _FIXED]
