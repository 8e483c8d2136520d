"""DMS's LOB task settings end to end (README, "LOB settings"): limited LOB mode cuts LOBs
to LobMaxSize under DataTruncationErrorPolicy, SupportLobs false leaves LOB columns out,
and without the settings written LOBs arrive whole; full load and CDC, on PostgreSQL,
MariaDB, SQLite and lake targets."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opendms.config import task_from_dict
from opendms.engine import plan
from opendms.errors import TaskError
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.oracles.lake import read_lake
from tests.support.sql import connect, query

KB = 1024
CUT = "LOB value truncated to 1024 bytes (TargetMetadata.LobMaxSize 1 KB)"

PG_SETUP = """
CREATE TABLE docs (id int PRIMARY KEY, title varchar(20), body text, photo bytea, meta jsonb);
INSERT INTO docs VALUES
  (1, 'small', 'short', '\\x0102', '{"a": 1}'),
  (2, 'text', repeat('ab€', 400), NULL, NULL),
  (3, 'bytes', NULL, decode(repeat('ff', 1500), 'hex'), NULL),
  (4, 'exact', repeat('x', 1024), decode(repeat('00', 1024), 'hex'), '{}'),
  (5, 'json', 'j', NULL, jsonb_build_object('k', repeat('y', 2000))),
  (7, 'toasted', (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 300) g),
   NULL, NULL);
"""
# Row 7's body (9600 bytes of hex digits) is stored out of line: an update that leaves it
# alone sends it as unchanged TOAST.
BODY7 = "".join(__import__("hashlib").md5(str(g).encode()).hexdigest() for g in range(1, 301))


def _spec(
    source: str, target: Any, settings: dict[str, Any], name: str = "lobs", **extra: Any
) -> Any:
    return task_from_dict(
        {
            "name": name,
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "task_settings": {
                "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0},
                **settings,
            },
            **extra,
        },
        where="test",
    )


def _limited(policy: str = "LOG_ERROR") -> dict[str, Any]:
    return {
        "TargetMetadata": {"LimitedSizeLobMode": True, "LobMaxSize": 1},
        "ErrorBehavior": {"DataTruncationErrorPolicy": policy},
    }


def _pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
            for row in conn.execute(sql).fetchall()
        ]


def _errors(store: StateStore) -> list[tuple[str, str, str]]:
    return sorted((key, column, reason) for _, key, column, reason in store.data_errors("lobs"))


@pytest.fixture
def pg_source(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(PG_SETUP)
    return pg_db


def test_pg_limited_mode_cuts_lobs_in_the_full_load_and_in_cdc(
    pg_source: str, pg_target_db: str, tmp_path: Path
) -> None:
    store = StateStore(tmp_path / "state.db")
    spec = _spec(pg_source, pg_target_db, _limited())
    run_task(spec, store)
    body2 = "ab€" * 204 + "ab"  # 1022 bytes: the next "€" would end at byte 1025
    assert len(body2.encode()) == 1022
    expected = {
        1: ("small", "short", b"\x01\x02", {"a": 1}),
        2: ("text", body2, None, None),
        3: ("bytes", None, b"\xff" * KB, None),
        4: ("exact", "x" * KB, b"\x00" * KB, {}),  # exactly LobMaxSize: whole
        7: ("toasted", BODY7[:KB], None, None),
    }
    sql = "SELECT id, title, body, photo, meta FROM docs ORDER BY id"
    assert {r[0]: r[1:] for r in _pg_rows(pg_target_db, sql)} == expected
    json_error = (
        "table public.docs: column meta: a value of 2009 bytes is longer than "
        "TargetMetadata.LobMaxSize (1 KB) and cannot be truncated (a JSON or XML document, "
        "or a key) (row id=5)"
    )
    loaded = [
        ("id=2", "body", f"{CUT} (DataTruncationErrorPolicy LOG_ERROR)"),
        ("id=3", "photo", f"{CUT} (DataTruncationErrorPolicy LOG_ERROR)"),
        ("id=5", "meta", json_error),  # a JSON document is not cut: DataErrorPolicy
        ("id=7", "body", f"{CUT} (DataTruncationErrorPolicy LOG_ERROR)"),
    ]
    assert _errors(store) == loaded
    assert store.tables("lobs")[0].state is TableState.COMPLETED

    with psycopg.connect(pg_source, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO docs VALUES (8, 'cdc', repeat('é', 600), "
            "decode(repeat('ab', 2000), 'hex'), '{\"b\": 2}')"
        )
        conn.execute("UPDATE docs SET body = repeat('z', 3000) WHERE id = 1")
        conn.execute("UPDATE docs SET title = 'retitled' WHERE id = 7")  # body unchanged
        conn.execute("UPDATE docs SET body = 'fits' WHERE id = 2")
        conn.execute("DELETE FROM docs WHERE id = 3")
    run_task(spec, store)
    expected[1] = ("small", "z" * KB, b"\x01\x02", {"a": 1})
    expected[2] = ("text", "fits", None, None)
    expected[7] = ("retitled", BODY7[:KB], None, None)
    expected[8] = ("cdc", "é" * 512, b"\xab" * KB, {"b": 2})
    del expected[3]
    assert {r[0]: r[1:] for r in _pg_rows(pg_target_db, sql)} == expected
    applied = [
        ("id=1", "body", f"update: column body: {CUT} (DataTruncationErrorPolicy LOG_ERROR)"),
        ("id=8", "body", f"insert: column body: {CUT} (DataTruncationErrorPolicy LOG_ERROR)"),
        ("id=8", "photo", f"insert: column photo: {CUT} (DataTruncationErrorPolicy LOG_ERROR)"),
    ]
    assert _errors(store) == sorted(loaded + applied)


def test_pg_cdc_ignore_record_skips_a_change_with_a_long_lob(
    pg_source: str, pg_target_db: str, tmp_path: Path
) -> None:
    store = StateStore(tmp_path / "state.db")
    spec = _spec(pg_source, pg_target_db, _limited("IGNORE_RECORD"))
    run_task(spec, store)
    ids = "SELECT id FROM docs ORDER BY id"
    assert _pg_rows(pg_target_db, ids) == [(1,), (4,)]  # 2, 3, 7 cut; 5 a data error
    with psycopg.connect(pg_source, autocommit=True) as conn:
        conn.execute("INSERT INTO docs VALUES (8, 'long', repeat('q', 1025))")
        conn.execute("INSERT INTO docs VALUES (9, 'short', repeat('q', 1024))")
        conn.execute("UPDATE docs SET body = repeat('w', 5000) WHERE id = 1")
    run_task(spec, store)
    sql = "SELECT id, length(body) FROM docs ORDER BY id"
    assert _pg_rows(pg_target_db, sql) == [(1, 5), (4, KB), (9, KB)]  # row 1 kept its body
    assert [e[:2] for e in _errors(store)] == [("id=5", "meta")]  # ignored: not recorded


def test_pg_support_lobs_false_leaves_the_lob_columns_out(
    pg_source: str, pg_target_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(pg_source, autocommit=True) as conn:
        conn.execute("CREATE TABLE pages (path text PRIMARY KEY, html text, hits int)")
        conn.execute("INSERT INTO pages VALUES ('/a', repeat('<p>', 50000), 3)")
    plan._warned_lobs.clear()
    store = StateStore(tmp_path / "state.db")
    spec = _spec(pg_source, pg_target_db, {"TargetMetadata": {"SupportLobs": False}})
    with caplog.at_level(logging.WARNING, logger="opendms.fullload"):
        run_task(spec, store)
    warned = sorted(r.getMessage() for r in caplog.records if "not migrated" in r.getMessage())
    assert warned == [
        "table public.docs: LOB columns not migrated (TargetMetadata.SupportLobs false): "
        "body, photo, meta",
        "table public.pages: LOB columns not migrated (TargetMetadata.SupportLobs false): "
        "html; kept as part of the key: path",
    ]
    columns = (
        "SELECT table_name, string_agg(column_name, ',' ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_schema = 'public' GROUP BY 1 ORDER BY 1"
    )
    assert _pg_rows(pg_target_db, columns) == [("docs", "id,title"), ("pages", "path,hits")]
    titles = [(1, "small"), (2, "text"), (3, "bytes"), (4, "exact"), (5, "json"), (7, "toasted")]
    assert _pg_rows(pg_target_db, "SELECT * FROM docs ORDER BY id") == titles
    assert _pg_rows(pg_target_db, "SELECT * FROM pages") == [("/a", 3)]
    with psycopg.connect(pg_source, autocommit=True) as conn:
        conn.execute("INSERT INTO docs VALUES (8, 'new', repeat('b', 99999), '\\x00', '[]')")
        conn.execute("UPDATE docs SET title = 'renamed', body = 'x' WHERE id = 1")
        conn.execute("UPDATE docs SET body = 'only the lob' WHERE id = 2")
        conn.execute("DELETE FROM docs WHERE id = 3")
        conn.execute("UPDATE pages SET hits = 4, html = 'h' WHERE path = '/a'")
    run_task(spec, store)
    titles = [(1, "renamed"), (2, "text"), (4, "exact"), (5, "json"), (7, "toasted"), (8, "new")]
    assert _pg_rows(pg_target_db, "SELECT * FROM docs ORDER BY id") == titles
    assert _pg_rows(pg_target_db, "SELECT * FROM pages") == [("/a", 4)]
    assert _errors(store) == []


def test_pg_lobs_arrive_whole_when_the_settings_are_not_written(
    pg_source: str, pg_target_db: str, tmp_path: Path
) -> None:
    big_text = "".join(chr(0x41 + i % 26) + "€" for i in range(25_600))  # 100 KB
    big_bytes = bytes(range(256)) * 400  # 100 KB
    with psycopg.connect(pg_source, autocommit=True) as conn:
        conn.execute("INSERT INTO docs VALUES (10, 'big', %s, %s, NULL)", (big_text, big_bytes))
    store = StateStore(tmp_path / "state.db")
    spec = _spec(pg_source, pg_target_db, {"ErrorBehavior": {"DataErrorPolicy": "STOP_TASK"}})
    run_task(spec, store)
    with psycopg.connect(pg_source, autocommit=True) as conn:
        conn.execute("INSERT INTO docs VALUES (11, 'big', %s, %s, NULL)", (big_text, big_bytes))
        conn.execute("UPDATE docs SET body = %s WHERE id = 1", (big_text * 2,))
    run_task(spec, store)
    sql = "SELECT id, body, photo FROM docs WHERE id IN (1, 10, 11) ORDER BY id"
    assert _pg_rows(pg_target_db, sql) == [
        (1, big_text * 2, b"\x01\x02"),
        (10, big_text, big_bytes),
        (11, big_text, big_bytes),
    ]
    meta = _pg_rows(pg_target_db, "SELECT length(meta::text) FROM docs WHERE id = 5")
    assert meta == [(2009,)]  # the 2 KB JSON document, whole
    assert _errors(store) == []


# -- MariaDB target --------------------------------------------------------------------


def test_pg_to_mariadb_limited_mode(pg_source: str, mysql_target_db: str, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    spec = _spec(pg_source, mysql_target_db, _limited())
    run_task(spec, store)
    with psycopg.connect(pg_source, autocommit=True) as conn:
        conn.execute("INSERT INTO docs VALUES (8, 'cdc', repeat('é', 600), '\\x0a0b', NULL)")
    run_task(spec, store)
    conn = connect(mysql_target_db)
    try:
        rows = {r[0]: r[1:] for r in query(conn, "SELECT id, body, photo FROM docs ORDER BY id")}
    finally:
        conn.close()
    assert rows == {
        1: ("short", b"\x01\x02"),
        2: ("ab€" * 204 + "ab", None),
        3: (None, b"\xff" * KB),
        4: ("x" * KB, b"\x00" * KB),
        7: (BODY7[:KB], None),
        8: ("é" * 512, b"\x0a\x0b"),
    }
    assert [e[:2] for e in _errors(store)] == [
        ("id=2", "body"),
        ("id=3", "photo"),
        ("id=5", "meta"),
        ("id=7", "body"),
        ("id=8", "body"),
    ]


# -- SQLite source: SQLite and lake targets --------------------------------------------


def _sqlite_source(tmp_path: Path) -> Path:
    source = tmp_path / "s.db"
    with sqlite3.connect(source) as con:
        con.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, name VARCHAR(10), body TEXT)")
        con.execute("INSERT INTO docs VALUES (1, 'a', ?), (2, 'b', 'short')", ("ü" * 700,))
    return source


def _sqlite_cdc(tmp_path: Path, policy: str) -> tuple[Any, StateStore, Path, Path]:
    source, target = _sqlite_source(tmp_path), tmp_path / "t.db"
    spec = _spec(f"sqlite:///{source}", f"sqlite:///{target}", _limited(policy))
    store = StateStore(tmp_path / "state.db")
    return spec, store, source, target


@pytest.mark.parametrize(
    ("policy", "rows", "recorded"),
    [
        ("LOG_ERROR", [(1, "ü" * 512), (2, "v" * KB), (3, "w" * KB)], ["id=1", "id=2", "id=3"]),
        ("IGNORE_RECORD", [(2, "short")], []),
        ("SUSPEND_TABLE", None, ["id=1"]),
    ],
)
def test_sqlite_limited_mode_follows_the_truncation_policy(
    tmp_path: Path, policy: str, rows: list[tuple[int, str]] | None, recorded: list[str]
) -> None:
    spec, store, source, target = _sqlite_cdc(tmp_path, policy)
    if rows is None:  # SUSPEND_TABLE: the full load fails the table at row 1
        with pytest.raises(TaskError, match=r"full load failed for main\.docs"):
            run_task(spec, store)
        stats = store.tables("lobs")[0]
        assert stats.state is TableState.ERROR and "truncated to 1024 bytes" in stats.error
        return
    run_task(spec, store)
    with sqlite3.connect(source) as con:
        con.execute("UPDATE docs SET body = ? WHERE id = 2", ("v" * 2000,))
        con.execute("INSERT INTO docs VALUES (3, 'c', ?)", ("w" * 1025,))
    run_task(spec, store)
    with sqlite3.connect(target) as con:
        assert con.execute("SELECT id, body FROM docs ORDER BY id").fetchall() == rows
    assert [key for key, _, _ in _errors(store)] == recorded


def test_sqlite_cdc_stop_task_stops_at_the_long_lob_every_time(tmp_path: Path) -> None:
    source, target = _sqlite_source(tmp_path), tmp_path / "t.db"
    with sqlite3.connect(source) as con:
        con.execute("UPDATE docs SET body = 'fits' WHERE id = 1")
    spec = _spec(f"sqlite:///{source}", f"sqlite:///{target}", _limited("STOP_TASK"))
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    with sqlite3.connect(source) as con:
        con.execute("INSERT INTO docs VALUES (3, 'c', ?)", ("w" * 1025,))
    for _ in range(2):  # the checkpoint stays before the change
        with pytest.raises(TaskError, match="body"):
            run_task(spec, store)
        with sqlite3.connect(target) as con:
            assert con.execute("SELECT id FROM docs ORDER BY id").fetchall() == [(1,), (2,)]


def test_lake_limited_mode_and_support_lobs_false(tmp_path: Path) -> None:
    source = _sqlite_source(tmp_path)
    settings = {"DataFormat": "parquet"}
    tasks = {
        "cut": _limited(),
        "dropped": {"TargetMetadata": {"SupportLobs": False}},
    }

    def run_all() -> None:
        for name, task_settings in tasks.items():
            target = {"url": f"file://{tmp_path / name}", "settings": settings}
            spec = _spec(f"sqlite:///{source}", target, task_settings, name=name)
            run_task(spec, StateStore(tmp_path / "state.db"))

    run_all()
    with sqlite3.connect(source) as con:
        con.execute("INSERT INTO docs VALUES (3, 'c', ?)", ("€" * 400,))
        con.execute("UPDATE docs SET name = 'bb' WHERE id = 2")
    run_all()
    keys = {"main.docs": ["id"]}
    rows = read_lake(tmp_path / "cut", settings, keys=keys)["main.docs"].rows
    assert [(r["id"], r["name"], r["body"]) for r in rows] == [
        (1, "a", "ü" * 512),
        (2, "bb", "short"),
        (3, "c", "€" * 341),  # 1023 bytes: a fourth byte would split a character
    ]
    rows = read_lake(tmp_path / "dropped", settings, keys=keys)["main.docs"].rows
    assert [sorted(r) for r in rows] == [["id", "name"]] * 3
    assert [(r["id"], r["name"]) for r in rows] == [(1, "a"), (2, "bb"), (3, "c")]
    errors = StateStore(tmp_path / "state.db").data_errors("cut")
    assert [(key, column) for _, key, column, _ in errors] == [("id=1", "body"), ("id=3", "body")]


def test_sqlite_limited_mode_on_a_table_with_transformation_rules(tmp_path: Path) -> None:
    """A table whose rows the mapping rules rewrite (an expression, before images) is
    cut by the same rules: its LOB outputs, and the before image of an update."""
    source, target = _sqlite_source(tmp_path), tmp_path / "t.db"
    table = {"schema-name": "main", "table-name": "docs"}
    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "1",
            "object-locator": table,
            "rule-action": "include",
            # a source filter makes the source send the old row of an update (README)
            "filters": [
                {
                    "filter-type": "source",
                    "column-name": "id",
                    "filter-conditions": [{"filter-operator": "gte", "value": "0"}],
                }
            ],
        },
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "2",
            "rule-action": "add-column",
            "rule-target": "column",
            "object-locator": table,
            "value": "shout",
            "expression": "upper($name)",
            "data-type": {"type": "string", "length": 10},
        },
        {
            "rule-type": "transformation",
            "rule-id": "3",
            "rule-name": "3",
            "rule-target": "column",
            "object-locator": table,
            "rule-action": "add-before-image-columns",
            "before-image-def": {"column-prefix": "BI_", "column-filter": "all"},
        },
    ]
    spec = _spec(
        f"sqlite:///{source}", f"sqlite:///{target}", _limited(), table_mappings={"rules": rules}
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    with sqlite3.connect(source) as con:
        con.execute("UPDATE docs SET body = ? WHERE id = 1", ("y" * 3000,))
        con.execute("INSERT INTO docs VALUES (3, 'c', ?)", ("w" * 1025,))
    run_task(spec, store)
    with sqlite3.connect(target) as con:
        rows = con.execute("SELECT id, shout, body, BI_body FROM docs ORDER BY id").fetchall()
    assert rows == [
        (1, "A", "y" * KB, "ü" * 512),  # the old body, as the target held it
        (2, "B", "short", None),
        (3, "C", "w" * KB, None),
    ]
    assert [(key, column) for key, column, _ in _errors(store)] == [
        ("id=1", "body"),  # full load
        ("id=1", "body"),  # the update
        ("id=3", "body"),
    ]


# -- a table-settings rule's lob-settings ------------------------------------------------

BIG_TEXT = "ab€" * 61_440  # 300 KB (5 bytes a repeat)
BIG_BYTES = bytes(range(256)) * 1_200  # 300 KB
CUT_TEXT = "ab€" * 204 + "ab"  # 1022 bytes: the next "€" would end at byte 1025
TABLE_CUT = "LOB value truncated to 1024 bytes (lob-settings bulk-max-size 1 KB)"
LOG_ERROR = "(DataTruncationErrorPolicy LOG_ERROR)"


def _table_settings(table: str, lob: dict[str, Any], rule_id: str = "2") -> dict[str, Any]:
    return {
        "rule-type": "table-settings",
        "rule-id": rule_id,
        "rule-name": rule_id,
        "object-locator": {"schema-name": "public", "table-name": table},
        "lob-settings": lob,
    }


def _two_tables(url: str) -> None:
    """``items`` and ``other``: the same rows, each with a 300 KB text and bytea LOB."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("items", "other"):
            conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, body text, pic bytea)")
            conn.execute(
                f"INSERT INTO {table} VALUES (1, %s, %s), (2, 'small', '\\x01')",
                (BIG_TEXT, BIG_BYTES),
            )


def _lob_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    return _pg_rows(url, f"SELECT id, body, pic FROM {table} ORDER BY id")


def _rules(*settings: dict[str, Any]) -> dict[str, Any]:
    select = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "1",
        "object-locator": {"schema-name": "public", "table-name": "%"},
        "rule-action": "include",
    }
    return {"rules": [select, *settings]}


def test_pg_a_tables_limited_lob_settings_cut_only_its_lobs(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """``items`` has lob-settings limited with bulk-max-size 1: its 300 KB LOBs are cut to
    1024 bytes (text at a character boundary) in the full load and in CDC, each cut
    recorded under LOG_ERROR; ``other`` (no rule, no task LOB settings) keeps them whole.
    PostgreSQL -> PostgreSQL CDC measures values in Python form for the table's limit."""
    _two_tables(pg_db)
    store = StateStore(tmp_path / "state.db")
    mappings = _rules(_table_settings("items", {"mode": "limited", "bulk-max-size": "1"}))
    settings = {"ErrorBehavior": {"DataTruncationErrorPolicy": "LOG_ERROR"}}
    spec = _spec(pg_db, pg_target_db, settings, table_mappings=mappings)
    run_task(spec, store)
    assert len(CUT_TEXT.encode()) == 1022
    assert _lob_rows(pg_target_db, "items") == [
        (1, CUT_TEXT, BIG_BYTES[:KB]),
        (2, "small", b"\x01"),
    ]
    assert _lob_rows(pg_target_db, "other") == _lob_rows(pg_db, "other")
    assert len(_lob_rows(pg_target_db, "other")[0][2]) == 300 * KB
    loaded = [
        ("id=1", "body", f"{TABLE_CUT} {LOG_ERROR}"),
        ("id=1", "pic", f"{TABLE_CUT} {LOG_ERROR}"),
    ]
    assert _errors(store) == loaded
    assert [e[0] for e in store.data_errors("lobs")] == ["public.items"] * 2

    with psycopg.connect(pg_db, autocommit=True) as conn:
        for table in ("items", "other"):
            conn.execute(
                f"INSERT INTO {table} VALUES (3, %s, %s)", ("x" * 300 * KB, BIG_BYTES[::-1])
            )
            conn.execute(f"UPDATE {table} SET body = %s WHERE id = 2", (BIG_TEXT,))
            conn.execute(f"UPDATE {table} SET body = 'fits' WHERE id = 1")
    run_task(spec, store)
    assert _lob_rows(pg_target_db, "items") == [
        (1, "fits", BIG_BYTES[:KB]),
        (2, CUT_TEXT, b"\x01"),
        (3, "x" * KB, BIG_BYTES[::-1][:KB]),
    ]
    assert _lob_rows(pg_target_db, "other") == _lob_rows(pg_db, "other")
    assert [len(r[1]) for r in _lob_rows(pg_target_db, "other")] == [4, len(BIG_TEXT), 300 * KB]
    applied = [
        ("id=2", "body", f"update: column body: {TABLE_CUT} {LOG_ERROR}"),
        ("id=3", "body", f"insert: column body: {TABLE_CUT} {LOG_ERROR}"),
        ("id=3", "pic", f"insert: column pic: {TABLE_CUT} {LOG_ERROR}"),
    ]
    assert _errors(store) == sorted(loaded + applied)


def test_pg_a_tables_unlimited_lob_settings_override_the_tasks_limit(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """Task-level limited LOB mode at 1 KB: ``items`` (mode unlimited) keeps its 300 KB
    LOBs whole in the full load and in CDC; ``other`` (mode none: the task's settings,
    its bulk-max-size ignored) is cut to 1 KB."""
    _two_tables(pg_db)
    store = StateStore(tmp_path / "state.db")
    mappings = _rules(
        _table_settings("items", {"mode": "unlimited", "bulk-max-size": "0"}),
        _table_settings("other", {"mode": "none", "bulk-max-size": "100000"}, "3"),
    )
    spec = _spec(pg_db, pg_target_db, _limited(), table_mappings=mappings)
    run_task(spec, store)
    assert _lob_rows(pg_target_db, "items") == _lob_rows(pg_db, "items")
    assert len(_lob_rows(pg_target_db, "items")[0][1]) == len(BIG_TEXT)
    assert _lob_rows(pg_target_db, "other") == [
        (1, CUT_TEXT, BIG_BYTES[:KB]),
        (2, "small", b"\x01"),
    ]
    with psycopg.connect(pg_db, autocommit=True) as conn:
        for table in ("items", "other"):
            conn.execute(f"INSERT INTO {table} VALUES (3, %s, %s)", ("y" * 300 * KB, BIG_BYTES))
    run_task(spec, store)
    assert _lob_rows(pg_target_db, "items") == _lob_rows(pg_db, "items")
    assert _lob_rows(pg_target_db, "items")[2] == (3, "y" * 300 * KB, BIG_BYTES)
    assert _lob_rows(pg_target_db, "other")[2] == (3, "y" * KB, BIG_BYTES[:KB])
    assert {e[0] for e in store.data_errors("lobs")} == {"public.other"}
    assert [e[:2] for e in _errors(store)] == [
        ("id=1", "body"),
        ("id=1", "pic"),
        ("id=3", "body"),
        ("id=3", "pic"),
    ]
    assert all("TargetMetadata.LobMaxSize 1 KB" in e[2] for e in _errors(store))


def test_sqlite_a_tables_lob_settings_win_over_support_lobs_false(tmp_path: Path) -> None:
    """SupportLobs false leaves out the LOB columns of the tables without lob-settings;
    a table whose lob-settings say limited keeps its LOB column, cut at its limit, in
    the full load and in CDC."""
    source, target = tmp_path / "s.db", tmp_path / "t.db"
    with sqlite3.connect(source) as con:
        for table in ("items", "other"):
            con.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body TEXT)")
            con.execute(f"INSERT INTO {table} VALUES (1, ?)", ("é" * 2000,))
    select = _rules(_table_settings("items", {"bulk-max-size": 1}))
    select["rules"][0]["object-locator"]["schema-name"] = "main"
    select["rules"][1]["object-locator"]["schema-name"] = "main"
    spec = _spec(
        f"sqlite:///{source}",
        f"sqlite:///{target}",
        {"TargetMetadata": {"SupportLobs": False}},
        table_mappings=select,
    )
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    with sqlite3.connect(source) as con:
        for table in ("items", "other"):
            con.execute(f"INSERT INTO {table} VALUES (2, ?)", ("ü" * 3000,))
    run_task(spec, store)
    with sqlite3.connect(target) as con:
        assert con.execute("SELECT id, body FROM items ORDER BY id").fetchall() == [
            (1, "é" * 512),
            (2, "ü" * 512),
        ]
        assert con.execute("SELECT * FROM other ORDER BY id").fetchall() == [(1,), (2,)]
    assert [e[:2] for e in _errors(store)] == [("id=1", "body"), ("id=2", "body")]
