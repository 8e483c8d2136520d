"""CDC between engines, judged by the scenario itself, never by opendms's own output.

After the changes the target must hold (a) the rows a Python model of the test's change
statements gives when applied to the source rows before them, and (b) the rows the
source holds, both read back with plain SQL by :mod:`tests.oracles.rows` (the model is
checked against the source too, so a wrong model fails rather than passes). Where the
README's type mapping loses information by design on the target, the test says so.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest

from opendms.config import TaskSpec, task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.oracles.rows import (
    Row,
    by_key,
    convert,
    interval,
    json_text,
    mysql_connect,
    naive_utc,
    read_rows,
    run_sql,
)

Model = dict[int, Row]
Lossy = Mapping[str, Callable[[Any], Any]]
UTC = dt.UTC
CODE_100 = "6f1c2a34-9b7e-4d21-8c55-0e4f3a2b1c9d"

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
    f" ARRAY[NULL, 'x'], '1 year 2 mons 3 days 04:05:06.5', '{CODE_100}')",
    "INSERT INTO items (id) VALUES (101)",
    "UPDATE items SET price = price * 2, name = NULL, doc = '{}' WHERE id <= 10",
    "UPDATE items SET id = 1000 WHERE id = 20",
    "DELETE FROM items WHERE id BETWEEN 30 AND 35",
    "BEGIN; UPDATE items SET qty = 1 WHERE id = 100; DELETE FROM items WHERE id = 101; COMMIT",
]
PG_ROW_100: Row = {
    "id": 100,
    "name": "new 😀",
    "price": Decimal("99.99"),
    "qty": -5,
    "ok": True,
    "born": dt.date(1999, 12, 31),
    "at": dt.datetime(2020, 2, 29, 23, 59, 59, 999999),
    "atz": dt.datetime(2020, 2, 29, 18, 29, 59, tzinfo=UTC),  # 23:59:59+05:30
    "ratio": 1e-300,
    "raw": b"",
    "doc": {"a": [1]},
    "tags": [None, "x"],
    "span": (14, 3, (4 * 3600 + 5 * 60 + 6) * 1_000_000 + 500_000),
    "code": CODE_100,
}

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
MY_ROW_100: Row = {
    "id": 100,
    "name": "new 😀",
    "price": Decimal("99.99"),
    "qty": -5,
    "ok": True,
    "born": dt.date(1999, 12, 31),
    "at": dt.datetime(2020, 2, 29, 23, 59, 59, 999999),
    "atz": dt.datetime(2020, 2, 29, 23, 59, 59, tzinfo=UTC),  # written in a UTC session
    "ratio": 1e-300,
    "raw": b"",
    "doc": {"a": [1]},
    "size": "l",
    "note": None,
}

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
SQLITE_ROW_100: Row = {
    "id": 100,
    "name": "new 😀",
    "price": Decimal("99.99"),
    "qty": -5,
    "ok": True,
    "born": dt.date(1999, 12, 31),
    "at": dt.datetime(2020, 2, 29, 23, 59, 59),
    "ratio": 1e-300,
    "raw": b"",
}


def _task(name: str, source: str, target: str, mtype: str) -> TaskSpec:
    return task_from_dict(
        {"name": name, "source": source, "target": target, "migration_type": mtype},
        where="test",
    )


def _statements(changes: list[str]) -> list[str]:
    """The statements one by one (MariaDB runs one statement per call)."""
    return [part for sql in changes for part in sql.split("; ")]


def _items_model(before: list[Row], new: Row, *, doc: bool, last_txn: bool) -> Model:
    """The rows the change lists above leave, each statement applied in Python to the
    source rows read before them (``doc``: the UPDATE also sets doc; ``last_txn``: the
    list ends with the transaction that updates 100 and deletes 101)."""
    rows = {r["id"]: dict(r) for r in before}
    rows[100] = dict(new)
    rows[101] = dict.fromkeys(new, None) | {"id": 101}
    for i in range(1, 11):
        rows[i].update(price=rows[i]["price"] * 2, name=None)
        if doc:
            rows[i]["doc"] = {}
    rows[1000] = rows.pop(20) | {"id": 1000}
    for i in range(30, 36):
        del rows[i]
    if last_txn:
        rows[100]["qty"] = 1
        del rows[101]
    return rows


def _cdc(source: str, target: str, changes: list[str], tmp_path: Path) -> list[Row]:
    """Full load and CDC of ``items`` with ``changes`` between two runs; the source rows
    just before the changes, read with plain SQL."""
    store = StateStore(tmp_path / "state.db")
    spec = _task("cdc", source, target, "full-load-and-cdc")
    run_task(spec, store)
    before = read_rows(source, "items")
    run_sql(source, changes)
    run_task(spec, store)
    return before


def _assert_target(
    source: str,
    target: str,
    model: Model,
    want_as: Lossy | None = None,
    got_as: Lossy | None = None,
) -> None:
    """The source (plain SQL) holds the model's rows, and so does the target, each side
    first passed through the README's lossy rules for this pair (``want_as``/``got_as``)."""
    assert by_key(read_rows(source, "items")) == model, "the model disagrees with the source"
    want = by_key(convert(model.values(), **(want_as or {})))
    got = by_key(convert(read_rows(target, "items"), **(got_as or {})))
    assert sorted(got) == sorted(want)
    for key, row in want.items():
        assert got[key] == row, key


def _assert_pg_items(
    target: str,
    before: list[Row],
    want_as: Lossy | None = None,
    got_as: Lossy | None = None,
) -> None:
    """The specific rows PG_CHANGES leaves, stated one by one."""
    old = by_key(convert(before, **(want_as or {})))
    got = by_key(convert(read_rows(target, "items"), **(got_as or {})))
    assert got[1000] == old[20] | {"id": 1000}
    assert not set(got) & {20, 30, 31, 32, 33, 34, 35, 101}
    assert got[100]["qty"] == 1 and got[100]["name"] == "new 😀"
    assert got[100]["price"] == Decimal("99.99")
    for i in range(1, 11):
        assert got[i]["price"] == Decimal("2.5") * i and got[i]["name"] is None
        assert got[i]["doc"] == {}
    assert got[11]["price"] == Decimal("13.75") and got[11]["name"] == "item 11 ✓"


@pytest.fixture
def pg_source(pg_db: str) -> str:
    run_sql(pg_db, [PG_SETUP])
    return pg_db


def test_pg_to_sqlite(pg_source: str, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path}/t.db"
    before = _cdc(pg_source, target, PG_CHANGES, tmp_path)
    model = _items_model(before, PG_ROW_100, doc=True, last_txn=True)
    _assert_target(pg_source, target, model)
    _assert_pg_items(target, before)


# README "Types": into MySQL/MariaDB a timestamptz becomes a DATETIME(6) in UTC and an
# interval ISO 8601 text (VARCHAR); the array is JSON (parsed by the reader).
PG_TO_MYSQL_WANT: Lossy = {"atz": naive_utc}
PG_TO_MYSQL_GOT: Lossy = {"span": interval}


def test_pg_to_mysql(pg_source: str, mysql_target_db: str, tmp_path: Path) -> None:
    before = _cdc(pg_source, mysql_target_db, PG_CHANGES, tmp_path)
    model = _items_model(before, PG_ROW_100, doc=True, last_txn=True)
    _assert_target(pg_source, mysql_target_db, model, PG_TO_MYSQL_WANT, PG_TO_MYSQL_GOT)
    _assert_pg_items(mysql_target_db, before, PG_TO_MYSQL_WANT, PG_TO_MYSQL_GOT)
    got = by_key(read_rows(mysql_target_db, "items"))
    assert got[100]["atz"] == dt.datetime(2020, 2, 29, 18, 29, 59)  # naive UTC
    assert got[100]["span"] == "P14M3DT14706.5S"


@pytest.fixture
def my_source(mysql_db: str) -> str:
    run_sql(mysql_db, MY_SETUP)
    return mysql_db


def test_mysql_to_postgres(my_source: str, pg_target_db: str, tmp_path: Path) -> None:
    before = _cdc(my_source, pg_target_db, _statements(MY_CHANGES), tmp_path)
    model = _items_model(before, MY_ROW_100, doc=True, last_txn=True)
    _assert_target(my_source, pg_target_db, model)


def test_mysql_to_sqlite(my_source: str, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path}/t.db"
    before = _cdc(my_source, target, _statements(MY_CHANGES), tmp_path)
    model = _items_model(before, MY_ROW_100, doc=True, last_txn=True)
    _assert_target(my_source, target, model)


def _ddl_model(before: list[Row]) -> Model:
    """The rows after the ALTERs and UPDATEs of the DDL test, before its TRUNCATE."""
    rows: Model = {}
    for old in before:
        row = {k: v for k, v in old.items() if k not in ("name", "qty", "note")}
        row |= {"title": old["name"], "quantity": old["qty"]}
        row["extra"] = old["id"] * 2 if old["id"] <= 5 else None
        rows[old["id"]] = row
    rows[3] |= {"price": Decimal("1.125"), "title": "after ddl"}
    return rows


def _mysql_columns(url: str) -> dict[str, str]:
    conn = mysql_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT column_name, column_type FROM information_schema.columns "
                "WHERE table_schema = database() AND table_name = 'items' "
                "ORDER BY ordinal_position"
            )
            return {str(n): str(t) for n, t in cur.fetchall()}
    finally:
        conn.close()


def test_mysql_to_mysql_with_ddl(my_source: str, mysql_target_db: str, tmp_path: Path) -> None:
    """DDL on the source is applied to the target and counted; the data follows it."""
    store = StateStore(tmp_path / "state.db")
    spec = _task("ddl", my_source, mysql_target_db, "full-load-and-cdc")
    run_task(spec, store)
    before = read_rows(my_source, "items")
    run_sql(
        my_source,
        [
            "ALTER TABLE items ADD COLUMN extra int",
            "UPDATE items SET extra = id * 2 WHERE id <= 5",
            "ALTER TABLE items DROP COLUMN note",
            "ALTER TABLE items CHANGE COLUMN qty quantity bigint",
            "ALTER TABLE items RENAME COLUMN name TO title",
            "ALTER TABLE items MODIFY price decimal(14,3)",
            "UPDATE items SET price = 1.125, title = 'after ddl' WHERE id = 3",
        ],
    )
    run_task(spec, store)
    _assert_target(my_source, mysql_target_db, _ddl_model(before))
    columns = _mysql_columns(mysql_target_db)
    assert columns == _mysql_columns(my_source)
    assert "note" not in columns and "qty" not in columns and "name" not in columns
    assert columns["quantity"] == "bigint(20)" and columns["price"] == "decimal(14,3)"
    run_sql(
        my_source,
        ["TRUNCATE TABLE items", "INSERT INTO items (id, title, extra) VALUES (7, 'again', 14)"],
    )
    run_task(spec, store)
    after = dict.fromkeys(columns, None) | {"id": 7, "title": "again", "extra": 14}
    _assert_target(my_source, mysql_target_db, {7: after})
    stats = {t.name: t for t in store.tables("ddl")}
    assert stats["items"].ddls == 6  # five ALTER TABLE and the TRUNCATE


class _Writer(threading.Thread):
    """Writes to ``items`` until stopped, noting when each statement committed."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url, self.done, self.error = url, 0, ""
        self.commits: list[dt.datetime] = []
        self.started = threading.Event()
        self.stop = threading.Event()

    def statements(self, i: int) -> list[str]:
        return [
            f"INSERT INTO items (id, name) VALUES ({5000 + i}, 'w{i}')",
            f"UPDATE items SET qty = qty + 1, name = 'u{i}' WHERE id = {1 + i % 50}",
            f"DELETE FROM items WHERE id = {5000 + i - 3}",
        ]

    def run(self) -> None:
        conn = mysql_connect(self.url)
        try:
            with conn.cursor() as cur:
                while not self.stop.is_set():
                    for sql in self.statements(self.done + 1):
                        cur.execute(sql)
                        self.commits.append(dt.datetime.now(UTC))  # autocommit
                    self.done += 1
                    self.started.set()
        except pymysql.Error as exc:
            self.error = repr(exc)
            self.started.set()
        finally:
            conn.close()


def _writer_model(before: list[Row], writes: int) -> Model:
    """The writer's ``writes`` iterations applied in Python to the rows before them."""
    rows = {r["id"]: dict(r) for r in before}
    blank = dict.fromkeys(before[0], None)
    for i in range(1, writes + 1):
        rows[5000 + i] = blank | {"id": 5000 + i, "name": f"w{i}"}
        row = rows[1 + i % 50]
        row.update(qty=row["qty"] + 1, name=f"u{i}")
        rows.pop(5000 + i - 3, None)
    return rows


def _load_window(store: StateStore, task: str) -> tuple[dt.datetime, dt.datetime]:
    """When opendms recorded the full load of ``items`` as started and ended (UTC, to
    the millisecond, truncated)."""
    (items,) = [t for t in store.tables(task) if t.name == "items"]
    assert items.started_at and items.ended_at
    return dt.datetime.fromisoformat(items.started_at), dt.datetime.fromisoformat(items.ended_at)


def test_mysql_writes_during_full_load(my_source: str, pg_db: str, tmp_path: Path) -> None:
    """Writes racing the snapshot-less full load are repaired by the catch-up phase."""
    run_sql(
        my_source,  # rows enough for the load to take a while, so that writes land in it
        ["INSERT INTO items (id, name) SELECT seq, concat('bulk ', seq) FROM seq_10001_to_40000"],
    )
    before = read_rows(my_source, "items")
    writer = _Writer(my_source)
    writer.start()
    store = StateStore(tmp_path / "state.db")
    spec = _task("race", my_source, pg_db, "full-load-and-cdc")
    try:
        assert writer.started.wait(30), "the writer never wrote"
        run_task(spec, store)
    finally:
        writer.stop.set()
        writer.join()
    assert not writer.error, writer.error
    start, end = _load_window(store, "race")
    first, last = writer.commits[0], writer.commits[-1]
    assert first < start and last > end  # writing before, through and after the load
    during = [t for t in writer.commits if start + dt.timedelta(milliseconds=1) <= t <= end]
    assert during, f"no write committed between {start} and {end}"
    run_task(spec, store)
    _assert_target(my_source, pg_db, _writer_model(before, writer.done))


def _binlog_position(url: str) -> str:
    from opendms.endpoints.mysql.changesource import MySqlChangeSource

    capture = MySqlChangeSource(EndpointURL.parse(url), "probe")
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
    before = by_key(read_rows(my_source, "items"))
    start = _binlog_position(my_source)
    run_sql(my_source, ["UPDATE items SET name = 'first' WHERE id = 1"])
    stop = _binlog_position(my_source)
    run_sql(my_source, ["UPDATE items SET name = 'second' WHERE id = 2"])
    spec: dict[str, Any] = {
        "name": "tail",
        "source": my_source,
        "target": pg_db,
        "migration_type": "cdc",
    }
    spec["task_settings"] = {"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}
    bounded = task_from_dict(
        {**spec, "CdcStartPosition": start, "CdcStopPosition": stop}, where="test"
    )
    run_task(bounded, store)
    first = before | {1: before[1] | {"name": "first"}}
    assert by_key(read_rows(pg_db, "items")) == first
    task = store.task("tail")
    assert task is not None and task.stop_reason == "STOP_POSITION_REACHED"
    run_task(task_from_dict(spec, where="test"), store)
    _assert_target(my_source, pg_db, first | {2: before[2] | {"name": "second"}})


def test_mysql_to_lake_follows_ddl(my_source: str, tmp_path: Path) -> None:
    """Lake CDC files after a DDL use the new columns; read by the independent reader,
    they hold the exact Ops and, folded strictly by Op, the source's rows."""
    from tests.oracles.lake import read_lake

    lake = tmp_path / "lake"
    spec = task_from_dict(
        {
            "name": "lake",
            "source": my_source,
            "target": {"url": f"file://{lake}", "settings": "DataFormat=parquet"},
            "migration_type": "full-load-and-cdc",
        },
        where="test",
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    run_sql(
        my_source,
        [
            "UPDATE items SET qty = 7 WHERE id = 1",
            "ALTER TABLE items ADD COLUMN extra varchar(10)",
            "UPDATE items SET extra = 'x' WHERE id <= 3",
            "ALTER TABLE items DROP COLUMN note",
            "INSERT INTO items (id, name, extra) VALUES (500, 'late', 'y')",
            "DELETE FROM items WHERE id = 2",
        ],
    )
    run_task(spec, store)
    schema = EndpointURL.parse(my_source).database
    items = read_lake(lake, "DataFormat=parquet", keys=["id"])[f"{schema}.items"]
    assert items.op_rows("id") == [("U", 1), ("U", 1), ("U", 2), ("U", 3), ("I", 500), ("D", 2)]
    assert [list(c.row) for c in items.changes][-2:] == [list(items.changes[-1].row)] * 2
    assert "note" not in items.changes[-1].row and items.changes[-1].row["extra"] == "x"
    want = by_key(read_rows(my_source, "items"))
    # The lake keeps each file's columns (README "CDC files in the lake"): rows last
    # written before the DDL still have note and no extra; JSON is text in Parquet.
    got = by_key(convert([{c: r.get(c) for c in want[1]} for r in items.rows], doc=json_text))
    assert got == want
    assert got[1]["qty"] == 7 and got[3]["extra"] == "x" and got[500]["extra"] == "y"
    stats = {t.name: t for t in store.tables("lake")}
    assert stats["items"].ddls == 2


def test_sqlite_to_postgres(pg_db: str, tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/src.db"
    run_sql(source, SQLITE_SETUP)
    before = _cdc(source, pg_db, SQLITE_CHANGES, tmp_path)
    model = _items_model(before, SQLITE_ROW_100, doc=False, last_txn=False)
    _assert_target(source, pg_db, model)
    got = by_key(read_rows(pg_db, "items"))
    assert got[101] == dict.fromkeys(SQLITE_ROW_100, None) | {"id": 101}
    assert got[3]["price"] == Decimal("7.50") and got[3]["ok"] is True
