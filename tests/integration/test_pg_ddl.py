"""DDL on a PostgreSQL source during CDC (issue 8, section 2): columns added, dropped,
renamed and retyped, tables created, truncated, renamed and dropped reach every target
in commit order with the data around them. Each database target ends equal, row for row
and column for column, to a fresh full load of the final source; the lakes' files,
replayed, hold the source's rows."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.engine.task import run_task
from opendms.state import StateStore
from opendms.testing.lakereplay import replay
from opendms.testing.sql import connect, execute, query

SETUP = [
    "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2), qty int, born date)",
    "INSERT INTO items SELECT g, 'item ' || g, g * 1.25, g, date '2024-01-01' + g "
    "FROM generate_series(1, 20) g",
    "CREATE TABLE gone (id int PRIMARY KEY, v text)",
    "INSERT INTO gone VALUES (1, 'x')",
    "CREATE TABLE oldname (id int PRIMARY KEY, v text)",
    "INSERT INTO oldname SELECT g, 'o' || g FROM generate_series(1, 5) g",
    "CREATE TABLE emptied (id int PRIMARY KEY, v text)",
    "INSERT INTO emptied SELECT g, 'e' || g FROM generate_series(1, 5) g",
]
DDL = [
    "ALTER TABLE items ADD COLUMN extra numeric(10,3)",
    "UPDATE items SET extra = id * 1.125 WHERE id <= 5",
    "ALTER TABLE items ADD COLUMN seen timestamptz, ADD COLUMN raw bytea",
    "UPDATE items SET seen = '2024-02-29 23:59:59.123456+05:30', raw = '\\x00ff10' WHERE id = 1",
    "ALTER TABLE items DROP COLUMN born",
    "ALTER TABLE items RENAME COLUMN name TO title",
    "ALTER TABLE items ALTER COLUMN qty TYPE bigint",
    "UPDATE items SET qty = 5000000000, title = 'after ddl' WHERE id = 3",
    # one transaction: rows before and after the DDL
    "BEGIN; INSERT INTO items (id, title) VALUES (100, 'before add'); "
    "ALTER TABLE items ADD COLUMN flag boolean; "
    "INSERT INTO items (id, title, flag, seen) VALUES (101, 'same txn', true, "
    "'2001-02-03 04:05:06.789+00'); UPDATE items SET flag = false WHERE id = 100; COMMIT",
    "CREATE TABLE later (id int PRIMARY KEY, v text, amount numeric(8,2), at timestamp)",
    "INSERT INTO later VALUES (1, 'a', 1.50, '2024-01-01 10:00:00.5'), (2, 'b', NULL, NULL)",
    "UPDATE later SET v = 'a2' WHERE id = 1",
    # no key yet: captured once it has one, with the rows it holds then
    "CREATE TABLE copied AS SELECT id, title, extra FROM items WHERE id <= 3",
    "ALTER TABLE copied ADD PRIMARY KEY (id)",
    "INSERT INTO copied VALUES (50, 'copied later', 2.5)",
    "TRUNCATE emptied",
    "INSERT INTO emptied VALUES (9, 'after truncate')",
    "ALTER TABLE oldname RENAME TO newname",
    "INSERT INTO newname VALUES (6, 'renamed')",
    "DROP TABLE gone",
    "CREATE TABLE not_selected (id int PRIMARY KEY)",
]
FINAL_TABLES = ["copied", "emptied", "items", "later", "newname"]
# (table, DDL count): items 6 column DDLs; created, truncated, renamed, dropped tables 1
DDLS = {"items": 6, "later": 1, "copied": 1, "emptied": 1, "oldname": 1, "gone": 1}
MAPPINGS = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "public", "table-name": "%"},
            "rule-action": "include",
        },
        {
            "rule-type": "selection",
            "rule-id": "2",
            "rule-name": "not this one",
            "object-locator": {"schema-name": "public", "table-name": "not[_]%"},
            "rule-action": "exclude",
        },
    ]
}


def _task(name: str, source: Any, target: Any, mtype: str = "full-load-and-cdc") -> Any:
    body = {"name": name, "source": source, "target": target, "migration_type": mtype}
    return task_from_dict({**body, "table_mappings": MAPPINGS}, where="test")


def _setup(url: str) -> None:
    execute(url, SETUP)


def _columns(url: str, table: str) -> list[tuple[str, str]]:
    """(name, type) of a table's columns in order, as the target engine declares them."""
    conn = connect(url)
    try:
        scheme = EndpointURL.parse(url).scheme
        if scheme == "sqlite":
            return [(r[1], r[2]) for r in query(conn, f"PRAGMA table_info({table})")]
        if scheme.startswith("postgres"):
            sql = (
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                "attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            )
            return [tuple(r) for r in query(conn, sql, (f"public.{table}",))]
        sql = (
            "SELECT column_name, column_type FROM information_schema.columns "
            "WHERE table_schema = database() AND table_name = %s ORDER BY ordinal_position"
        )
        return [tuple(r) for r in query(conn, sql, (table,))]
    finally:
        conn.close()


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    conn = connect(url)
    try:
        prefix = "public." if EndpointURL.parse(url).scheme.startswith("postgres") else ""
        return [tuple(r) for r in query(conn, f"SELECT * FROM {prefix}{table} ORDER BY 1")]
    finally:
        conn.close()


def _cdc_with_ddl(source: str, target: Any, tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    spec = _task("ddl", source, target)
    run_task(spec, store)
    execute(source, DDL)
    run_task(spec, store)
    return store


def _assert_counts(store: StateStore) -> None:
    stats = {t.name: t for t in store.tables("ddl")}
    assert {name: stats[name].ddls for name in DDLS} == DDLS
    assert stats["newname"].inserts == 1 and stats["later"].inserts == 2
    assert stats["copied"].inserts == 3 + 1  # the rows it held when captured, then one


def _assert_equals_full_load(source: str, target: str, reference: str, store: StateStore) -> None:
    run_task(_task("ref", source, reference, "full-load"), store)
    for table in FINAL_TABLES:
        assert _columns(target, table) == _columns(reference, table), table
        got, want = _rows(target, table), _rows(reference, table)
        assert got == want and got, table
    for table in ("gone", "oldname", "not_selected"):
        assert _columns(target, table) == [], table


def test_pg_to_pg(pg_db: str, pg_target_db: str, pg_server: Any, tmp_path: Path) -> None:
    _setup(pg_db)
    store = _cdc_with_ddl(pg_db, pg_target_db, tmp_path)
    reference = pg_server.create_database("ref_" + os.urandom(6).hex())
    try:
        _assert_equals_full_load(pg_db, pg_target_db, reference, store)
    finally:
        pg_server.drop_database(EndpointURL.parse(reference).database)
    _assert_counts(store)
    assert _rows(pg_target_db, "items")[0][4:7] == (
        Decimal("1.125"),
        _rows(pg_db, "items")[0][5],
        b"\x00\xff\x10",
    )


def test_pg_to_mariadb(pg_db: str, mysql_db: str, mysql_target_db: str, tmp_path: Path) -> None:
    _setup(pg_db)
    store = _cdc_with_ddl(pg_db, mysql_db, tmp_path)
    _assert_equals_full_load(pg_db, mysql_db, mysql_target_db, store)
    _assert_counts(store)


def test_pg_to_sqlite(pg_db: str, tmp_path: Path) -> None:
    _setup(pg_db)
    target = f"sqlite:///{tmp_path}/t.db"
    store = _cdc_with_ddl(pg_db, target, tmp_path)
    _assert_equals_full_load(pg_db, target, f"sqlite:///{tmp_path}/ref.db", store)
    _assert_counts(store)


# -- lakes ------------------------------------------------------------------------------

LAKE = "DataFormat=parquet;CdcMaxBatchInterval=1"


def _lake_rows(lake: str, table: str, also: str = "") -> dict[int, dict[str, Any]]:
    rows = replay(lake, "public", table, ["id"])
    if also:
        rows += replay(lake, "public", also, ["id"])
    return {int(r["id"]): r for r in rows}


def _assert_lake(source: str, lake: str, tmp_path: Path, store: StateStore) -> None:
    reference = f"file://{tmp_path}/ref"
    spec = _task("ref", source, {"url": reference, "settings": LAKE}, "full-load")
    run_task(spec, store)
    # the lake keeps each file's columns: rows last written before the rename carry
    # ``name``; TRUNCATE is not written to the lake (emptied keeps its old rows)
    aliases = {"title": "name"}
    for table in ("items", "later", "copied", "newname"):
        got = _lake_rows(lake, table, also="oldname" if table == "newname" else "")
        want = _lake_rows(reference, table)
        assert sorted(got) == sorted(want), table
        for key, row in want.items():
            for column, value in row.items():
                have = got[key].get(column, got[key].get(aliases.get(column, "")))
                assert have == value, (table, key, column)
    assert 9 in _lake_rows(lake, "emptied")


def test_pg_to_local_lake(pg_db: str, tmp_path: Path) -> None:
    _setup(pg_db)
    lake = f"file://{tmp_path}/lake"
    store = _cdc_with_ddl(pg_db, {"url": lake, "settings": LAKE}, tmp_path)
    _assert_lake(pg_db, lake, tmp_path, store)
    _assert_counts(store)


def test_pg_to_s3_lake(pg_db: str, s3_url: str, tmp_path: Path) -> None:
    _setup(pg_db)
    store = _cdc_with_ddl(pg_db, {"url": s3_url, "settings": LAKE}, tmp_path)
    _assert_lake(pg_db, s3_url, tmp_path, store)
    _assert_counts(store)
