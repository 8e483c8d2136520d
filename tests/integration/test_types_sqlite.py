"""SQLite values carried exactly (issue 8, section 4), full load and CDC:

- a REAL stored in a DECIMAL/NUMERIC column keeps every digit of the double (the
  shortest text that reads back as it), not SQLite's 15-digit text;
- -0.0 into a SQLite REAL column (which would store 0.0) is a data error of its row;
- date-time text with a zone (``Z``, ``+05:00``) is an instant, taken to UTC;
- PostgreSQL's time '24:00:00' reaches MySQL as TIME and is a data error into SQLite and
  lakes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from opendms.service.run import run_task
from opendms.state import StateStore
from tests.integration.specs import logging_task
from tests.support.sql import connect, execute, query


def _by_id(url: str, sql: str) -> dict[int, tuple[Any, ...]]:
    conn = connect(url)
    try:
        return {r[0]: tuple(r[1:]) for r in query(conn, sql)}
    finally:
        conn.close()


def _sqlite(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as conn:
        for sql in statements:
            conn.execute(sql)


def _errors(store: StateStore, task: str) -> list[tuple[str, str]]:
    return sorted((key, column) for _, key, column, _ in store.data_errors(task))


def test_real_in_decimal_columns_keeps_every_digit(tmp_path: Path, pg_target_db: str) -> None:
    """Before: 3.141592653589793 arrived as 3.14159265358979 (and 0.1 + 0.2 as 0.3)."""
    db = tmp_path / "src.db"
    _sqlite(
        db,
        "CREATE TABLE m (id INTEGER PRIMARY KEY, d DECIMAL(20,15), n NUMERIC)",
        "INSERT INTO m VALUES (1, 3.141592653589793, 3.141592653589793), "
        "(2, 2.5, 0.1 + 0.2), (3, 0.1 + 0.2, 1e300), (4, 7, 12345678901234567)",
    )
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("reals", f"sqlite:///{db}", pg_target_db, "full-load-and-cdc")
    run_task(spec, store)
    _sqlite(
        db,
        "INSERT INTO m VALUES (5, 2.718281828459045, 2.718281828459045), (6, 0.125, 2.0 / 3)",
        "UPDATE m SET n = 1.0 / 3 WHERE id = 1",
    )
    run_task(spec, store)
    got = _by_id(pg_target_db, "SELECT id, d::text, n::text FROM main.m ORDER BY id")
    assert got == {
        1: ("3.141592653589793", "0.3333333333333333"),
        2: ("2.500000000000000", "0.30000000000000004"),
        4: ("7.000000000000000", "12345678901234567"),
        5: ("2.718281828459045", "2.718281828459045"),
        6: ("0.125000000000000", "0.6666666666666666"),
    }
    # 0.30000000000000004 needs more than DECIMAL(20,15)'s 15 fraction digits
    assert _errors(store, "reals") == [("id=3", "d")]


def test_negative_zero_into_sqlite_real_is_a_data_error(pg_db: str, tmp_path: Path) -> None:
    """Before: -0.0 arrived as 0.0 (a SQLite REAL column drops the sign) without a word."""
    execute(
        pg_db,
        [
            "CREATE TABLE z (id int PRIMARY KEY, f float8, r real)",
            "INSERT INTO z VALUES (1, '-0', 1), (2, 0, 2), (3, 1.5, '-0'), (4, -2.5, -4)",
        ],
    )
    target = tmp_path / "dst.db"
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("zeros", pg_db, f"sqlite:///{target}", "full-load-and-cdc")
    run_task(spec, store)
    execute(pg_db, ["INSERT INTO z VALUES (5, '-0', 0), (6, 6, 6)"])
    run_task(spec, store)
    with sqlite3.connect(target) as conn:
        rows = conn.execute("SELECT id, f, r FROM z ORDER BY id").fetchall()
    assert rows == [(2, 0.0, 2.0), (4, -2.5, -4.0), (6, 6.0, 6.0)]
    assert _errors(store, "zeros") == [
        ("id=1", "f"),
        ("id=3", "r"),
        ("id=5", "f"),
    ]  # CDC errors name the column too


def test_datetime_text_with_a_zone_is_an_instant(tmp_path: Path, pg_target_db: str) -> None:
    """Before: '2024-01-01 10:00:00+05:00' and '...Z' were refused as data errors."""
    db = tmp_path / "src.db"
    _sqlite(
        db,
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME, ts TIMESTAMP, tz TIMESTAMPTZ)",
        "INSERT INTO ev VALUES "
        "(1, '2024-01-01 10:00:00+05:00', '2024-01-01T10:00:00Z', '2024-01-01 10:00:00'), "
        "(2, '2024-06-30 23:30:00.25-02:30', '2024-01-01 10:00:00', '2024-01-01 10:00 +01:00'), "
        "(3, '2024-01-01 10:00', NULL, '2024-01-01T10:00:00.5Z')",
    )
    store = StateStore(tmp_path / "state.db")
    spec = logging_task("zones", f"sqlite:///{db}", pg_target_db, "full-load-and-cdc")
    run_task(spec, store)
    _sqlite(db, "INSERT INTO ev VALUES (4, '2024-02-29 00:30:00+01:00', NULL, '2024-03-01 00:00Z')")
    run_task(spec, store)
    assert store.data_errors("zones") == []
    got = _by_id(
        pg_target_db,
        "SELECT id, at::text, ts::text, (tz AT TIME ZONE 'UTC')::text FROM main.ev ORDER BY id",
    )
    assert got == {
        1: ("2024-01-01 05:00:00", "2024-01-01 10:00:00", "2024-01-01 10:00:00"),
        2: ("2024-07-01 02:00:00.25", "2024-01-01 10:00:00", "2024-01-01 09:00:00"),
        3: ("2024-01-01 10:00:00", None, "2024-01-01 10:00:00.5"),
        4: ("2024-02-28 23:30:00", None, "2024-03-01 00:00:00"),
    }


def test_postgres_time_24_00_is_carried_or_refused_by_row(
    pg_db: str, mysql_db: str, tmp_path: Path
) -> None:
    """PostgreSQL allows time '24:00:00'. Before: the MySQL table failed on it (LOAD DATA
    got Arrow's "<value out of range>" text); SQLite and CSV files stored that text."""
    execute(
        pg_db,
        [
            "CREATE TABLE tt (id int PRIMARY KEY, t time)",
            "INSERT INTO tt VALUES (1, '24:00:00'), (2, '23:59:59.999999'), (3, NULL)",
        ],
    )
    store = StateStore(tmp_path / "state.db")
    run_task(logging_task("day", pg_db, mysql_db), store)
    got = _by_id(mysql_db, "SELECT id, CAST(t AS CHAR) FROM tt ORDER BY id")
    assert got == {1: ("24:00:00.000000",), 2: ("23:59:59.999999",), 3: (None,)}
    lite = tmp_path / "t.db"
    run_task(logging_task("day2", pg_db, f"sqlite:///{lite}"), store)
    with sqlite3.connect(lite) as conn:
        rows = conn.execute("SELECT id, t FROM tt ORDER BY id").fetchall()
    assert rows == [(2, "23:59:59.999999"), (3, None)]
    assert _errors(store, "day2") == [("id=1", "t")]
    run_task(logging_task("day3", pg_db, f"file://{tmp_path}/lake?DataFormat=csv"), store)
    [csv] = (tmp_path / "lake/public/tt").glob("*.csv")
    assert csv.read_text().splitlines() == ["2,23:59:59.999999", "3,"]  # before: "<value out of..."
    assert _errors(store, "day3") == [("id=1", "t")]
