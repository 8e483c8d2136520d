"""SQLite change capture through triggers: decoded changes equal what the full load reads."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import random
import sqlite3
import struct
import threading
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from opendms.arrowutil import read_rejections
from opendms.changes import LSN, Change, ColumnChange, Op, SeqPosition, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.sqlite.changesource import SqliteChangeSource, capture_names, trigger_name
from opendms.endpoints.sqlite.source import SQLiteSource
from opendms.errors import EndpointError, TaskError
from opendms.model import Kind, ReadPlan, T, TableRef
from tests.integration.everything import create_sqlite

# the module itself (the package may export a function of the same name)
capture_module = importlib.import_module("opendms.endpoints.sqlite.changesource")

KINDS_DDL = """
CREATE TABLE kinds (
  id INTEGER PRIMARY KEY, i INT, small SMALLINT, r REAL, dbl DOUBLE, t TEXT, vc VARCHAR(20),
  b BLOB, n NUMERIC, d DECIMAL(10,2), wide DECIMAL_TEXT(30,10), flag BOOLEAN, day DATE,
  at DATETIME, ts TIMESTAMP, tm TIME, js JSON, u UUID, untyped)
"""
KINDS_ROWS: list[tuple[Any, ...]] = [
    (
        1,
        42,
        -7,
        1.5,
        0.1 + 0.2,
        "plain",
        "varchar",
        b"\x00\x01\xff",
        "123.456",
        "19.99",
        "12345678901234567890.0123456789",
        1,
        "2024-02-29",
        "2024-01-02 03:04:05.123456",
        "2024-01-02T03:04:05",
        "12:34:56.789",
        '{"a": [1, 2.50, null], "u": "𝄞"}',
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        17,
    ),
    (2,) + (None,) * 18,
    (
        3,
        -9223372036854775808,
        32767,
        5e-324,
        1.7976931348623157e308,
        "emoji 😀 𝄞 ✓ é 'q\" \\",
        "",
        b"",
        5,
        0.01,
        "-0.0000000001",
        "true",
        "1000-01-01",
        "9999-12-31 23:59:59.999999",
        "1970-01-01 00:00:00",
        "00:00:00",
        "[]",
        "00000000-0000-0000-0000-000000000000",
        "x",
    ),
    (
        4,
        9223372036854775807,
        0,
        float("inf"),
        float("-inf"),
        "\n\t",
        "z",
        b"\\",
        "-1e-3",
        "-99999999.99",
        "0",
        "FALSE",
        "2000-01-01",
        "2000-01-01 00:00:00",
        "2000-01-01",
        "23:59:59.999999",
        '"just a string"',
        "x",
        2.25,
    ),
]


# -- helpers ----------------------------------------------------------------------------


def _url(path: Path) -> EndpointURL:
    return EndpointURL.parse(f"sqlite:///{path}")


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _capture(path: Path, *tables: str, task: str = "cap") -> SqliteChangeSource:
    cap = SqliteChangeSource(_url(path), task)
    cap.prepare([TableRef("main", t) for t in tables])
    return cap


def _drain(cap: SqliteChangeSource, start: SeqPosition) -> list[Transaction]:
    """Every transaction the stream delivers up to the end of the change table."""
    stop = threading.Event()
    out: list[Transaction] = []
    for txn in cap.stream(start, stop):
        if txn is not None:
            out.append(txn)
        if cap.caught_up():
            break
    return out


def _changes(cap: SqliteChangeSource, start: SeqPosition) -> list[Change]:
    return [c for txn in _drain(cap, start) for c in txn.changes]


def _full_load(path: Path, table: str) -> list[dict[str, Any]]:
    """The table's rows as the SQLite full load reads them, ordered by the first column."""
    source = SQLiteSource(_url(path), str(path))
    try:
        desc = source.describe(TableRef("main", table))
        plan = ReadPlan(desc, tuple(c.name for c in desc.columns))
        rows = [r for batch in source.read(plan, None) for r in batch.to_pylist()]
    finally:
        source.close()
    return sorted(rows, key=lambda r: r[desc.columns[0].name])


def _change_rows(path: Path, task: str = "cap") -> list[tuple[Any, ...]]:
    with _connect(path) as conn:
        return conn.execute(f'SELECT seq, tbl, op FROM "{capture_names(task)[0]}"').fetchall()


def _objects(path: Path) -> list[tuple[str, str]]:
    with _connect(path) as conn:
        rows = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE name LIKE 'opendms%' ORDER BY 1, 2"
        )
        return [(r[0], r[1]) for r in rows]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "src.db"
    with _connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INT)")
        conn.execute("CREATE TABLE logs (at TEXT, msg TEXT)")  # no primary key
        conn.execute("INSERT INTO items VALUES (1, 'before', 1)")
    return path


def _insert(c: str, row: tuple[Any, ...]) -> Change:
    return Change(Op.INSERT, "main", c, ("id", "name", "qty"), row)


# -- values equal the full load's --------------------------------------------------------


def test_every_type_matches_full_load(tmp_path: Path) -> None:
    path = tmp_path / "kinds.db"
    with _connect(path) as conn:
        conn.execute(KINDS_DDL)
    cap = _capture(path, "kinds")
    start = cap.start()[0]
    with _connect(path) as conn:
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO kinds VALUES ({', '.join('?' * 19)})", KINDS_ROWS)
        conn.execute("COMMIT")
    inserted = _full_load(path, "kinds")
    changes = _changes(cap, start)
    assert [c.op for c in changes] == [Op.INSERT] * 4
    assert [dict(zip(c.columns, c.values, strict=True)) for c in changes] == inserted

    first = dict(zip(changes[0].columns, changes[0].values, strict=True))
    assert first["d"] == Decimal("19.99") and first["n"] == "123.456"
    assert first["wide"] == Decimal("12345678901234567890.0123456789")
    assert first["dbl"] == 0.1 + 0.2 and first["b"] == b"\x00\x01\xff" and first["flag"] is True
    assert first["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert first["ts"] == dt.datetime(2024, 1, 2, 3, 4, 5) and first["day"] == dt.date(2024, 2, 29)
    assert first["tm"] == dt.time(12, 34, 56, 789000) and first["untyped"] == "17"
    third = dict(zip(changes[2].columns, changes[2].values, strict=True))
    assert third["t"] == "emoji 😀 𝄞 ✓ é 'q\" \\" and third["r"] == 5e-324
    assert third["i"] == -9223372036854775808 and third["flag"] is True and third["b"] == b""
    assert set(dict(zip(changes[1].columns, changes[1].values, strict=True)).values()) == {2, None}

    position = cap.current_position()
    with _connect(path) as conn:
        conn.execute("UPDATE kinds SET id = id + 10, t = t || '!'")
    updated = _full_load(path, "kinds")
    changes = _changes(cap, position)
    assert [c.op for c in changes] == [Op.UPDATE] * 4
    assert [dict(zip(c.columns, c.values, strict=True)) for c in changes] == updated
    assert [(c.key_columns, c.key) for c in changes] == [(("id",), (i,)) for i in (1, 2, 3, 4)]

    position = cap.current_position()
    with _connect(path) as conn:
        conn.execute("DELETE FROM kinds")
    changes = _changes(cap, position)
    assert [(c.op, c.key_columns, c.key) for c in changes] == [
        (Op.DELETE, ("id",), (i,)) for i in (11, 12, 13, 14)
    ]


def test_everything_table_old_and_new_images(tmp_path: Path) -> None:
    path = tmp_path / "every.db"
    create_sqlite(str(path))
    before = _full_load(path, "everything")
    cap = _capture(path, "everything")
    start = cap.start()[0]
    with _connect(path) as conn:
        conn.execute("UPDATE everything SET id = id + 100")
    after = _full_load(path, "everything")
    changes = _changes(cap, start)
    assert [dict(zip(c.columns, c.values, strict=True)) for c in changes] == after
    assert [c.key for c in changes] == [(r["id"],) for r in before]

    position = cap.current_position()
    with _connect(path) as conn:
        conn.execute(
            "INSERT INTO everything SELECT id + 1000, " + _all_but_id(conn) + " FROM everything"
        )
    copies = [r for r in _full_load(path, "everything") if r["id"] > 1000]
    changes = _changes(cap, position)
    assert [dict(zip(c.columns, c.values, strict=True)) for c in changes] == copies


def _all_but_id(conn: sqlite3.Connection) -> str:
    names = [r[1] for r in conn.execute("PRAGMA table_info(everything)") if r[1] != "id"]
    return ", ".join(f'"{n}"' for n in names)


def test_real_values_are_exact(tmp_path: Path) -> None:
    path = tmp_path / "reals.db"
    rng = random.Random(7)
    bits = (struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0] for _ in range(3000))
    values = [v for v in bits if v == v] + [rng.uniform(-1e6, 1e6) for _ in range(1000)]
    values += [0.1, 1e-310, 2.2250738585072014e-308, -1.7976931348623157e308, 1e22]
    with _connect(path) as conn:
        conn.execute("CREATE TABLE reals (id INTEGER PRIMARY KEY, x REAL)")
    cap = _capture(path, "reals")
    start = cap.start()[0]
    with _connect(path) as conn:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO reals (x) VALUES (?)", [(v,) for v in values])
        conn.execute("COMMIT")
    got = [c.values[1] for c in _changes(cap, start)]
    assert got == values
    assert got == [r["x"] for r in _full_load(path, "reals")]


def test_wide_table_beyond_function_argument_limit(tmp_path: Path) -> None:
    path = tmp_path / "wide.db"
    cols = [f"c{i} INT" for i in range(300)]
    with _connect(path) as conn:
        conn.execute(f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {', '.join(cols)})")
    cap = _capture(path, "wide")
    start = cap.start()[0]
    with _connect(path) as conn:
        conn.execute(f"INSERT INTO wide VALUES (1, {', '.join(str(i) for i in range(300))})")
    (change,) = _changes(cap, start)
    assert change.values == (1, *range(300)) and len(change.columns) == 301


def test_value_the_full_load_rejects_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    with _connect(path) as conn:
        conn.execute("CREATE TABLE bad (id INTEGER PRIMARY KEY, n INT, t TEXT, d DATE)")
    cap = _capture(path, "bad")
    start = cap.start()[0]
    with _connect(path) as conn:  # one transaction
        conn.execute("INSERT INTO bad VALUES (1, 'not a number', 'ok', NULL)")
        conn.execute("INSERT INTO bad VALUES (2, 5, 'fine', '2024-01-02')")
        conn.execute("INSERT INTO bad VALUES (3, 6, 'bad day', 'yesterday')")
        conn.execute("UPDATE bad SET n = 'seven' WHERE id = 2")
        conn.execute("DELETE FROM bad WHERE id = 3")
    source = SQLiteSource(_url(path), str(path))
    desc = source.describe(TableRef("main", "bad"))
    (batch,) = source.read(ReadPlan(desc, ("id", "n", "t")), None)
    source.close()
    assert [(r[1], r[2]) for r in read_rejections(batch)] == [
        ("n", "value cannot be represented as int64")
    ] * 2
    (txn,) = _drain(cap, start)  # the transaction goes on: each bad row is an error change
    nan = "column n: value {!r} cannot be represented as int64"
    day = "column d: value 'yesterday' cannot be represented as date"
    assert [(c.op, c.values, c.key, c.error) for c in txn.changes] == [
        (Op.INSERT, (1, "not a number", "ok", None), (), nan.format("not a number")),
        (Op.INSERT, (2, 5, "fine", dt.date(2024, 1, 2)), (), ""),
        (Op.INSERT, (3, 6, "bad day", "yesterday"), (), day),
        (Op.UPDATE, (2, "seven", "fine", dt.date(2024, 1, 2)), (2,), nan.format("seven")),
        (Op.DELETE, (), (3,), day),
    ]
    assert txn.changes[0].error_column() == "n" and txn.changes[2].error_column() == "d"


# -- operations, keys, transactions -------------------------------------------------------


def test_inserts_updates_deletes_and_keys(db: Path) -> None:
    cap = _capture(db, "items")
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'two', 2)")
        conn.execute("UPDATE items SET qty = 20 WHERE id = 2")
        conn.execute("UPDATE items SET id = 3, name = 'three' WHERE id = 2")  # key change
        conn.execute("BEGIN")
        conn.execute("INSERT INTO items VALUES (4, 'four', NULL)")
        conn.execute("INSERT INTO items VALUES (5, 'five', 5)")
        conn.execute("DELETE FROM items WHERE id = 1")
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO items VALUES (6, 'rolled back', 6)")
        conn.execute("UPDATE items SET qty = 0")
        conn.execute("ROLLBACK")
    cols = ("id", "name", "qty")
    assert _changes(cap, start) == [
        _insert("items", (2, "two", 2)),
        Change(Op.UPDATE, "main", "items", cols, (2, "two", 20), ("id",), (2,)),
        Change(Op.UPDATE, "main", "items", cols, (3, "three", 20), ("id",), (2,)),
        _insert("items", (4, "four", None)),
        _insert("items", (5, "five", 5)),
        Change(Op.DELETE, "main", "items", key_columns=("id",), key=(1,)),
    ]
    assert cap.current_position().value == start.value + 6  # the rollback left nothing


def test_quoted_names_without_rowid_and_generated_columns(tmp_path: Path) -> None:
    path = tmp_path / "names.db"
    with _connect(path) as conn:
        conn.execute(
            'CREATE TABLE "we""ird t.b" ("k ey" TEXT PRIMARY KEY, "x""y" INT) WITHOUT ROWID'
        )
        conn.execute("CREATE TABLE gen (id INTEGER PRIMARY KEY, a INT, b INT AS (a * 2))")
    cap = _capture(path, 'we"ird t.b', "gen")
    start = cap.start()[0]
    with _connect(path) as conn:
        conn.execute("""INSERT INTO "we""ird t.b" VALUES ('k', 1)""")
        conn.execute("""UPDATE "we""ird t.b" SET "k ey" = 'K', "x""y" = 2""")
        conn.execute("INSERT INTO gen (id, a) VALUES (1, 5)")  # like the full load: no b
    cols = ("k ey", 'x"y')
    assert _changes(cap, start) == [
        Change(Op.INSERT, "main", 'we"ird t.b', cols, ("k", 1)),
        Change(Op.UPDATE, "main", 'we"ird t.b', cols, ("K", 2), ("k ey",), ("k",)),
        Change(Op.INSERT, "main", "gen", ("id", "a"), (1, 5)),
    ]
    assert list(_full_load(path, "gen")[0]) == ["id", "a"]


def _replay(rows: dict[Any, tuple[Any, ...]], changes: list[Change]) -> dict[Any, Any]:
    """Apply changes keyed by the first column, strictly (no upserts, no missing rows)."""
    out = dict(rows)
    for c in changes:
        if c.op in (Op.UPDATE, Op.DELETE):
            assert c.key[0] in out, c
            del out[c.key[0]]
        if c.op in (Op.INSERT, Op.UPDATE):
            assert c.values[0] not in out, c
            out[c.values[0]] = c.values
    return out


def test_replace_deletes_are_captured(tmp_path: Path) -> None:
    path = tmp_path / "replace.db"
    with _connect(path) as conn:
        conn.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, u TEXT UNIQUE, v INT)")
        conn.execute(
            "CREATE TABLE s (a TEXT, b INT, c TEXT UNIQUE ON CONFLICT REPLACE, "
            "PRIMARY KEY (a, b)) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO r VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (4, NULL, 4)")
        conn.execute("INSERT INTO s VALUES ('x', 1, 'p'), ('x', 2, 'q')")
    before_r = {r["id"]: tuple(r.values()) for r in _full_load(path, "r")}
    before_s = {(r["a"], r["b"]): tuple(r.values()) for r in _full_load(path, "s")}
    cap = _capture(path, "r", "s")
    start = cap.start()[0]
    with _connect(path) as conn:
        conn.execute("INSERT OR REPLACE INTO r VALUES (1, 'b', 10)")  # replaces rows 1 and 2
        conn.execute("REPLACE INTO r VALUES (5, 'c', 5), (6, 'e', 6), (7, 'e', 7)")  # 7 replaces 6
        conn.execute("INSERT OR IGNORE INTO r VALUES (1, 'z', 0), (8, 'a', 8)")  # 1 ignored
        conn.execute("INSERT INTO r VALUES (8, 'h', 0) ON CONFLICT (id) DO UPDATE SET v = 80")
        conn.execute("UPDATE OR REPLACE r SET u = 'e' WHERE id = 8")  # replaces row 7
        conn.execute("INSERT INTO r VALUES (9, NULL, 9)")  # NULLs never conflict
        conn.execute("PRAGMA recursive_triggers = ON")
        conn.execute("REPLACE INTO r VALUES (9, 'n', 90)")  # its delete trigger fires
        conn.execute("PRAGMA recursive_triggers = OFF")
        conn.execute("INSERT INTO s VALUES ('y', 1, 'p')")  # the column's own ON CONFLICT
    changes = _changes(cap, start)
    assert [(c.op, c.table, c.key) for c in changes if c.op is Op.DELETE] == [
        (Op.DELETE, "r", (1,)),
        (Op.DELETE, "r", (2,)),
        (Op.DELETE, "r", (3,)),
        (Op.DELETE, "r", (6,)),
        (Op.DELETE, "r", (7,)),
        (Op.DELETE, "r", (9,)),
        (Op.DELETE, "s", ("x", 1)),
    ]
    r_changes = [c for c in changes if c.table == "r"]
    after_r = {r["id"]: tuple(r.values()) for r in _full_load(path, "r")}
    assert _replay(before_r, r_changes) == after_r
    s_changes = [
        replace(c, key=(c.key[:2],), values=(c.values[:2], *c.values))
        for c in changes
        if c.table == "s"
    ]
    after_s = {(r["a"], r["b"]): ((r["a"], r["b"]), *r.values()) for r in _full_load(path, "s")}
    assert _replay({k: (k, *v) for k, v in before_s.items()}, s_changes) == after_s


def test_table_without_primary_key_is_keyed_by_all_columns(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "opendms.sqlite.capture"):
        cap = _capture(db, "logs")
    assert "main.logs has no primary key" in caplog.text
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO logs VALUES ('t1', 'hello')")
        conn.execute("INSERT INTO logs VALUES ('t1', 'hello')")
        conn.execute("UPDATE logs SET msg = 'bye' WHERE rowid = 1")
        conn.execute("DELETE FROM logs")  # SQLite's TRUNCATE: one row change each
    every = ("at", "msg")
    assert _changes(cap, start) == [
        Change(Op.INSERT, "main", "logs", every, ("t1", "hello")),
        Change(Op.INSERT, "main", "logs", every, ("t1", "hello")),
        Change(Op.UPDATE, "main", "logs", every, ("t1", "bye"), every, ("t1", "hello")),
        Change(Op.DELETE, "main", "logs", key_columns=every, key=("t1", "bye")),
        Change(Op.DELETE, "main", "logs", key_columns=every, key=("t1", "hello")),
    ]


def test_only_captured_tables_and_chunked_transactions(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_module, "CHUNK_ROWS", 2)
    cap = _capture(db, "items", "logs")
    start = cap.start()[0]
    with _connect(db) as conn:
        for i in range(2, 5):
            conn.execute("INSERT INTO items VALUES (?, 'x', ?)", (i, i))
            conn.execute("INSERT INTO logs VALUES ('t', 'deselected before streaming')")
    cap.prepare([TableRef("main", "items")])
    txns = _drain(cap, start)
    seqs = [s for s, _t, _op in _change_rows(db)]
    assert len(seqs) == 6
    assert [[c.values[0] for c in t.changes] for t in txns] == [[2], [3], [4]]
    assert [t.xid for t in txns] == seqs[0::2]
    assert [t.end for t in txns] == [SeqPosition(s) for s in seqs[1::2]]
    assert all(t.commit_time.tzinfo is dt.UTC for t in txns)
    assert abs(txns[-1].commit_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_prepare_again_drops_deselected_tables(db: Path) -> None:
    cap = _capture(db, "items", "logs")
    assert ("trigger", trigger_name("cap", "logs", "i")) in _objects(db)
    cap.prepare([TableRef("main", "items")])
    names = {name for _type, name in _objects(db)}
    assert {trigger_name("cap", "items", op) for op in "iud"} <= names
    assert not any("logs" in n for n in names)
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO logs VALUES ('t', 'm')")
        conn.execute("INSERT INTO items VALUES (9, 'nine', 9)")
    assert _changes(cap, start) == [_insert("items", (9, "nine", 9))]


def test_two_tasks_capture_independently(db: Path) -> None:
    one, two = _capture(db, "items", task="one"), _capture(db, "items", task="Two-2")
    assert capture_names("Two-2") == ("opendms_changes_two_2", "opendms_columns_two_2")
    s1, s2 = one.start()[0], two.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'b', 2)")
    assert _changes(one, s1) == _changes(two, s2) == [_insert("items", (2, "b", 2))]
    one.confirm(one.current_position())
    assert _change_rows(db, "one") == [] and len(_change_rows(db, "Two-2")) == 1


def test_trigger_name_clash_with_another_task_fails_loudly(db: Path) -> None:
    with _connect(db) as conn:
        conn.execute("CREATE TABLE b_items (id INTEGER PRIMARY KEY)")
    other = _capture(db, "items", task="a_b")  # its triggers: opendms_a_b_items_*
    with pytest.raises(EndpointError, match='trigger "opendms_a_b_items_i" already exists'):
        _capture(db, "b_items", task="a")  # would be named opendms_a_b_items_* too
    start = other.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'b', 2)")
    assert _changes(other, start) == [_insert("items", (2, "b", 2))]


# -- positions ---------------------------------------------------------------------------


def test_resume_from_saved_position(db: Path) -> None:
    cap = _capture(db, "items")
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'b', 2)")
        saved = cap.current_position()
        conn.execute("INSERT INTO items VALUES (3, 'c', 3)")
        conn.execute("DELETE FROM items WHERE id = 2")
    assert len(_changes(cap, start)) == 3
    cap.close()
    again = SqliteChangeSource(_url(db), "cap")
    assert again.exists()
    assert again.parse_position(str(saved)) == saved
    assert _changes(again, saved) == [
        _insert("items", (3, "c", 3)),
        Change(Op.DELETE, "main", "items", key_columns=("id",), key=(2,)),
    ]


def test_stream_idles_and_reports_caught_up(db: Path) -> None:
    cap = _capture(db, "items")
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'b', 2)")
    stop = threading.Event()
    stream = cap.stream(start, stop)
    assert not cap.caught_up()
    first = next(stream)
    assert first is not None and cap.caught_up() and first.end == cap.current_position()
    assert next(stream) is None  # idle
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (3, 'c', 3)")
    item = next(stream)
    while item is None:
        item = next(stream)
    assert item.changes == [_insert("items", (3, "c", 3))]
    stop.set()
    assert list(stream) == []


def test_confirm_trims_the_change_table(db: Path) -> None:
    cap = _capture(db, "items")
    start = cap.start()[0]
    with _connect(db) as conn:
        for i in range(2, 6):
            conn.execute("INSERT INTO items VALUES (?, 'x', 0)", (i,))
    txn = _drain(cap, start)[0]
    seqs = [s for s, _t, _op in _change_rows(db)]
    cap.confirm(SeqPosition(seqs[1]))
    assert [s for s, _t, _op in _change_rows(db)] == seqs[2:]
    with _connect(db) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        cap.confirm(txn.end)  # database locked: tolerated, retried later
        assert cap.unconfirmed
        blocker.execute("ROLLBACK")
    assert len(_change_rows(db)) == 2
    cap.confirm(txn.end)
    assert _change_rows(db) == [] and not cap.unconfirmed
    assert cap.current_position() == txn.end  # positions survive trimming
    with pytest.raises(TaskError, match="not a SQLite change-table sequence number"):
        cap.confirm(LSN(5))


def test_deleted_changes_raise_naming_the_position(db: Path) -> None:
    cap = _capture(db, "items")
    start = cap.start()[0]
    with _connect(db) as conn:
        for i in range(2, 5):
            conn.execute("INSERT INTO items VALUES (?, 'x', 0)", (i,))
        conn.execute(f'DELETE FROM "{capture_names("cap")[0]}" WHERE seq <= ?', (start.value + 1,))
    with pytest.raises(TaskError, match=f"after position {start.value} .*deleted"):
        _changes(cap, start)
    assert len(_changes(cap, SeqPosition(start.value + 1))) == 2


def test_recreated_change_table_raises_naming_the_position(db: Path) -> None:
    cap = _capture(db, "items")
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'x', 0)")
    saved = cap.current_position()
    cap.drop()
    cap.prepare([TableRef("main", "items")])
    assert not cap.exists()  # just created: no saved position can be served
    with pytest.raises(TaskError, match=f"after position {saved.value}"):
        _changes(cap, saved)
    with pytest.raises(TaskError, match=f"before position {saved.value + 10**12}"):
        _changes(cap, SeqPosition(saved.value + 10**12))


def test_lost_triggers_are_never_skipped_silently(db: Path) -> None:
    cap = _capture(db, "items")
    saved = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'captured', 0)")
        conn.execute(f'DROP TRIGGER "{trigger_name("cap", "items", "i")}"')
        conn.execute("INSERT INTO items VALUES (3, 'missed', 0)")
    assert not SqliteChangeSource(_url(db), "cap").exists()
    with pytest.raises(TaskError, match=r"capture triggers of main\.items are gone"):
        _changes(cap, saved)
    again = _capture(db, "items")  # reinstalls the triggers, remembers the gap
    assert not again.exists()
    with pytest.raises(TaskError, match=rf"main\.items were missing after position {saved.value}"):
        _changes(again, saved)
    fresh = again.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (4, 'after', 0)")
    assert _changes(again, fresh) == [_insert("items", (4, "after", 0))]


def test_drop_removes_triggers_and_tables(db: Path) -> None:
    cap = _capture(db, "items", "logs")
    assert len(_objects(db)) == 10  # 2 tables, items: 5 triggers (keyed), logs: 3
    cap.drop()
    assert _objects(db) == []
    assert not cap.exists()
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'still writable', 0)")
    cap.drop()  # idempotent


def test_wal_mode(db: Path) -> None:
    _capture(db, "items")
    with _connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# -- schema changes ------------------------------------------------------------------------


def test_add_column_while_streaming(db: Path) -> None:
    cap = _capture(db, "items")
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (2, 'b', 2)")
    stop = threading.Event()
    stream = cap.stream(start, stop)
    assert next(stream) is not None
    with _connect(db) as conn:  # stale triggers record rows 3 and 2 without the new column
        conn.execute("ALTER TABLE items ADD COLUMN note TEXT DEFAULT 'n/a' NOT NULL")
        conn.execute("INSERT INTO items VALUES (3, 'c', 3, 'three')")
        conn.execute("UPDATE items SET note = 'two' WHERE id = 2")
    changes: list[Change] = []
    while not cap.caught_up() or not changes:
        item = next(stream)
        changes += item.changes if item else []
    cols, wider = ("id", "name", "qty"), ("id", "name", "qty", "note")
    assert changes == [
        _insert("items", (3, "c", 3)),
        Change(Op.UPDATE, "main", "items", cols, (2, "b", 2), ("id",), (2,)),
        Change(
            Op.DDL,
            "main",
            "items",
            wider,
            ddl=(ColumnChange("add", "note", T(Kind.STRING), nullable=False),),
        ),
        Change(Op.UPDATE, "main", "items", wider, (2, "b", 2, "two"), ("id",), (2,)),
        Change(Op.UPDATE, "main", "items", wider, (3, "c", 3, "three"), ("id",), (3,)),
    ]
    with _connect(db) as conn:
        conn.execute("INSERT INTO items VALUES (4, 'd', 4, 'four')")
    item = next(stream)
    while item is None:
        item = next(stream)
    assert item.changes == [Change(Op.INSERT, "main", "items", wider, (4, "d", 4, "four"))]
    stop.set()


def test_add_column_while_stopped_rerecords_keyless_table(db: Path) -> None:
    cap = _capture(db, "logs")
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("INSERT INTO logs VALUES ('t0', 'old')")
        conn.execute("ALTER TABLE logs ADD COLUMN level INT")
        conn.execute("INSERT INTO logs VALUES ('t1', 'new', 3)")
    cap.close()
    again = _capture(db, "logs")  # notices the new column when the task starts again
    changes = _changes(again, start)
    assert [c.op for c in changes] == [
        Op.INSERT,
        Op.INSERT,
        Op.DDL,
        Op.TRUNCATE,
        Op.INSERT,
        Op.INSERT,
    ]
    assert changes[2].ddl == (ColumnChange("add", "level", T(Kind.INT64)),)
    assert [c.values for c in changes[4:]] == [("t0", "old", None), ("t1", "new", 3)]


def test_rename_column(db: Path) -> None:
    cap = _capture(db, "items")
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("ALTER TABLE items RENAME COLUMN qty TO amount")
        conn.execute("UPDATE items SET amount = 7")
    changes = _changes(cap, start)
    assert changes == [
        Change(Op.UPDATE, "main", "items", ("id", "name", "qty"), (1, "before", 7), ("id",), (1,)),
        Change(
            Op.DDL,
            "main",
            "items",
            ("id", "name", "amount"),
            ddl=(ColumnChange("rename", "qty", new_name="amount"),),
        ),
    ]


def test_dropped_table_raises(db: Path) -> None:
    cap = _capture(db, "items")
    start = cap.start()[0]
    with _connect(db) as conn:
        conn.execute("DROP TABLE items")
    with pytest.raises(TaskError, match=r"captured table main\.items no longer exists"):
        _changes(cap, start)


def test_concurrent_writer_loses_and_repeats_nothing(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_module, "CHUNK_ROWS", 37)
    monkeypatch.setattr(capture_module, "IDLE_WAIT", 0.01)
    cap = _capture(db, "items")
    start = cap.start()[0]

    def write() -> None:
        with _connect(db) as conn:
            conn.execute("PRAGMA busy_timeout = 5000")
            for i in range(2, 1002, 4):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT INTO items VALUES (?, 'w', 0)", [(j,) for j in range(i, i + 4)]
                )
                conn.execute("UPDATE items SET qty = qty + 1 WHERE id = ?", (i,))
                conn.execute("COMMIT")

    writer = threading.Thread(target=write)
    writer.start()
    stop, seen, last = threading.Event(), list[tuple[Op, int]](), start
    deadline = time.monotonic() + 60
    for txn in cap.stream(start, stop):
        if txn is not None:
            assert isinstance(txn.end, SeqPosition) and txn.end > last
            seen += [(c.op, c.values[0]) for c in txn.changes]
            last = txn.end
            cap.confirm(last)  # competes with the writer for the lock
        if len(seen) >= 1250 or time.monotonic() > deadline:
            stop.set()
    writer.join()
    expected = []
    for i in range(2, 1002, 4):
        expected += [(Op.INSERT, j) for j in range(i, i + 4)] + [(Op.UPDATE, i)]
    assert seen == expected
    cap.confirm(last)
    assert _change_rows(db) == []
