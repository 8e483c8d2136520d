"""DDL on a PostgreSQL source during CDC (issue 8, section 2): columns added, dropped,
renamed and retyped, tables created, truncated, renamed and dropped reach every target
in commit order with the data around them. Each database target ends holding the final
source's columns and rows, both read with plain SQL (:mod:`tests.oracles.rows`; the
README's lossy rules for MariaDB stated); its declared column types are those a fresh
full load of the final source creates (PostgreSQL: the source's own types). The lakes'
files, read by the independent reader (:mod:`tests.oracles.lake`), hold each table's
exact Ops in commit order and, folded strictly by Op, the source's rows."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.oracles.lake import Lake, read_lake
from tests.oracles.rows import Row, by_key, convert, interval, json_text, naive_utc, read_rows
from tests.support.sql import connect, execute, query

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
    "ALTER TABLE items ADD COLUMN doc jsonb, ADD COLUMN code uuid, ADD COLUMN span interval, "
    "ADD COLUMN tags int[], ADD COLUMN ratio double precision",
    "UPDATE items SET doc = '{\"a\": [1, 2.5, null]}', code = 'a0eebc99-9c0b-4ef8-bb6d-"
    "6bb9bd380a11', span = '1 day 04:05:06.5', tags = '{1,NULL,3}', ratio = 0.1 WHERE id = 2",
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
    "CREATE TABLE copied AS SELECT id, title, extra, id % 2 = 0 AS even, 'x'::char(3) AS c3, "
    "seen FROM items WHERE id <= 3",
    "ALTER TABLE copied ADD PRIMARY KEY (id)",
    "INSERT INTO copied VALUES (50, 'copied later', 2.5, true, 'y', '2020-01-01 00:00+00')",
    "TRUNCATE emptied",
    "INSERT INTO emptied VALUES (9, 'after truncate')",
    "ALTER TABLE oldname RENAME TO newname",
    "INSERT INTO newname VALUES (6, 'renamed')",
    "DROP TABLE gone",
    "CREATE TABLE not_selected (id int PRIMARY KEY)",
]
FINAL_TABLES = ["copied", "emptied", "items", "later", "newname"]
# (table, DDL count): items 7 column DDLs; created, truncated, renamed, dropped tables 1
DDLS = {"items": 7, "later": 1, "copied": 1, "emptied": 1, "oldname": 1, "gone": 1}
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


def _as_source(source: str, target: str, table: str) -> tuple[list[Row], list[Row]]:
    """(source rows, target rows) read with plain SQL, each side in the form the README
    gives the pair: into MariaDB a timestamptz is a DATETIME(6) in UTC and an interval ISO
    8601 text; MariaDB reads CHAR(n) without its trailing spaces."""
    want, got = read_rows(source, table), read_rows(target, table)
    domains = {n for n, t in _columns(source, table) if t == "posint"}
    want = convert(want, **{c: str for c in domains})  # README: domains elsewhere -> text
    if not target.startswith("mysql"):
        return want, got
    stamps = {c for r in want for c, v in r.items() if getattr(v, "tzinfo", None)}
    chars = {n for n, t in _columns(source, table) if t.startswith("character(")}
    strip = {c: str.rstrip for c in chars}
    want = convert(want, **{c: naive_utc for c in stamps}, **strip)
    spans = {n for n, t in _columns(source, table) if t == "interval"}
    return want, convert(got, **{c: interval for c in spans}, **strip)


def _assert_like_source(source: str, target: str, table: str) -> None:
    """The target's ``table`` holds the source's column names and rows."""
    names = [n for n, _ in _columns(source, table)]
    assert [n for n, _ in _columns(target, table)] == names, table
    want, got = _as_source(source, target, table)
    assert want, table
    assert by_key(got) == by_key(want), table


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
    assert {stats[t].state.value for t in ("later", "copied", "newname")} == {"Table completed"}


def _assert_final(source: str, target: str, reference: str, store: StateStore) -> None:
    """Every final table holds the source's columns and rows (plain SQL); the declared
    types are those a fresh full load into ``reference`` creates; the dropped, renamed and
    unselected tables are not there."""
    run_task(_task("ref", source, reference, "full-load"), store)
    for table in FINAL_TABLES:
        _assert_like_source(source, target, table)
        assert _columns(target, table) == _columns(reference, table), table
    for table in ("gone", "oldname", "not_selected"):
        assert _columns(target, table) == [], table


def test_pg_to_pg(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    _setup(pg_db)
    store = _cdc_with_ddl(pg_db, pg_target_db, tmp_path)
    for table in FINAL_TABLES:  # PostgreSQL -> PostgreSQL keeps native types (README)
        _assert_like_source(pg_db, pg_target_db, table)
        assert _columns(pg_target_db, table) == _columns(pg_db, table), table
    for table in ("gone", "oldname", "not_selected"):
        assert _columns(pg_target_db, table) == [], table
    _assert_counts(store)
    assert _rows(pg_target_db, "items")[0][4:7] == (
        Decimal("1.125"),
        _rows(pg_db, "items")[0][5],
        b"\x00\xff\x10",
    )


def test_pg_to_mariadb(pg_db: str, mysql_db: str, mysql_target_db: str, tmp_path: Path) -> None:
    _setup(pg_db)
    store = _cdc_with_ddl(pg_db, mysql_db, tmp_path)
    _assert_final(pg_db, mysql_db, mysql_target_db, store)
    _assert_counts(store)


def test_pg_to_sqlite(pg_db: str, tmp_path: Path) -> None:
    _setup(pg_db)
    target = f"sqlite:///{tmp_path}/t.db"
    store = _cdc_with_ddl(pg_db, target, tmp_path)
    _assert_final(pg_db, target, f"sqlite:///{tmp_path}/ref.db", store)
    _assert_counts(store)


# -- lakes ------------------------------------------------------------------------------

LAKE = "DataFormat=parquet;CdcMaxBatchInterval=1"


# (Op, id) of each table's CDC rows, in commit order (from DDL above): the rewrite of
# ALTER COLUMN TYPE sends no rows, CREATE TABLE AS rows follow as inserts, TRUNCATE removes
# the files before it, a renamed table's changes go to the new name's folder
LAKE_OPS: dict[str, list[tuple[str, int]]] = {
    "items": [
        *(("U", i) for i in range(1, 6)),
        *(("U", i) for i in (1, 2, 3)),
        *(("I", 100), ("I", 101), ("U", 100)),
    ],
    "later": [("I", 1), ("I", 2), ("U", 1)],
    "copied": [("I", 1), ("I", 2), ("I", 3), ("I", 50)],
    "emptied": [("I", 9)],
    "oldname": [],
    "newname": [("I", 6)],
    "gone": [],
}


def _by_id(lake: Lake, *tables: str) -> dict[int, dict[str, Any]]:
    return {int(r["id"]): r for t in tables for r in lake[f"public.{t}"].rows}


# README: in Parquet an interval is ISO 8601 text; JSON is text
LAKE_TEXT = {"span": interval, "doc": json_text}


def _assert_lake(source: str, lake: str, store: StateStore) -> None:
    got = read_lake(lake, LAKE, keys=["id"])
    assert {t: got[f"public.{t}"].op_rows("id") for t in LAKE_OPS} == LAKE_OPS
    # the lake keeps each file's columns: rows last written before the rename carry
    # ``name``, rows before an ADD COLUMN lack it; a TRUNCATE removes the table's files
    # written before it (as in DMS)
    aliases = {"title": "name"}
    for table in ("items", "later", "copied", "newname"):
        rows = _by_id(got, "oldname", table) if table == "newname" else _by_id(got, table)
        want = by_key(read_rows(source, table))
        assert sorted(rows) == sorted(want), table
        for key, row in want.items():
            lake_row = convert([rows[key]], **LAKE_TEXT)[0]
            for column, value in row.items():
                have = lake_row.get(column, lake_row.get(aliases.get(column, "")))
                assert have == value, (table, key, column)
    assert sorted(_by_id(got, "emptied")) == [9]  # TRUNCATE removed the earlier files


def test_pg_to_local_lake(pg_db: str, tmp_path: Path) -> None:
    _setup(pg_db)
    lake = f"file://{tmp_path}/lake"
    store = _cdc_with_ddl(pg_db, {"url": lake, "settings": LAKE}, tmp_path)
    _assert_lake(pg_db, lake, store)
    _assert_counts(store)


def test_pg_to_s3_lake(pg_db: str, s3_url: str, tmp_path: Path) -> None:
    _setup(pg_db)
    store = _cdc_with_ddl(pg_db, {"url": s3_url, "settings": LAKE}, tmp_path)
    _assert_lake(pg_db, s3_url, store)
    _assert_counts(store)


# -- no DDL, no DDL applied -------------------------------------------------------------

TYPED = [
    "CREATE DOMAIN posint AS int CHECK (VALUE > 0)",
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
    "CREATE TABLE typed (id int PRIMARY KEY, a varchar(10), b char(3), c numeric, "
    "d numeric(30,10), e time(3), f timestamp(0), g timestamptz(2), h interval, i uuid, "
    "j jsonb, k json, l int[], m text[], n mood, o mood[], p posint, q bytea, r real, "
    "s double precision, t smallint, u bigint, v boolean, w date, y varchar)",
    "INSERT INTO typed VALUES (1, 'a', 'b', 1.5, 2.25, '10:00:00.123', '2024-01-01 10:00', "
    "'2024-01-01 10:00:00.12+02', '1 day', gen_random_uuid(), '{}', '[1]', '{1,2}', "
    "'{a,NULL}', 'ok', '{sad,happy}', 5, '\\x00', 1.5, 2.5, 3, 4, true, '2024-02-29', "
    "'free')",
]


def test_no_ddl_means_no_ddl_applied(pg_db: str, tmp_path: Path) -> None:
    """The relation messages of a stream whose source had no DDL agree with the captured
    tables, whatever the column types: nothing is altered, nothing is counted."""
    execute(pg_db, TYPED)
    store = StateStore(tmp_path / "state.db")
    target = f"sqlite:///{tmp_path}/t.db"
    spec = _task("ddl", pg_db, target)
    run_task(spec, store)
    execute(
        pg_db,
        [
            "UPDATE typed SET a = 'b', n = 'happy', p = 7, l = '{3}' WHERE id = 1",
            "INSERT INTO typed (id, o, b) VALUES (2, '{ok}', 'z')",
        ],
    )
    run_task(spec, store)
    [stats] = store.tables("ddl")
    assert (stats.ddls, stats.updates, stats.inserts) == (0, 1, 1)
    reference = f"sqlite:///{tmp_path}/ref.db"
    run_task(_task("ref", pg_db, reference, "full-load"), store)
    assert _columns(target, "typed") == _columns(reference, "typed")
    _assert_like_source(pg_db, target, "typed")


# -- crashes and resumes ----------------------------------------------------------------

AROUND_A_DDL = [
    "UPDATE items SET price = 1.26 WHERE id = 1",  # text '1.26' of a column retyped below
    "BEGIN; ALTER TABLE items ADD COLUMN extra numeric(10,3); "
    "UPDATE items SET extra = 1.5 WHERE id = 1; "
    "ALTER TABLE items RENAME COLUMN name TO title; "
    "ALTER TABLE items ALTER COLUMN price TYPE int USING round(price)::int; COMMIT",
    "UPDATE items SET extra = 2.25, title = 't', price = 7 WHERE id = 2",
    "INSERT INTO items (id, title, extra) VALUES (30, 'after', 3.5)",
]


class CrashError(Exception):
    pass


def _crash_once(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    """Make the MariaDB applier fail once at a DDL: ``before`` it alters anything,
    ``between`` the ALTERs (which commit at once on MariaDB) and the checkpoint,
    ``after`` the DDL transaction and its checkpoint are committed."""
    from opendms.endpoints.mysql.apply import MySqlApplier

    state = {"altered": False, "done": False}
    alter, write, apply = (
        MySqlApplier.alter_column,
        MySqlApplier.write_checkpoint,
        MySqlApplier.apply,
    )

    def alter_column(self: Any, tmap: Any, cc: Any) -> None:
        if when == "before" and not state["done"]:
            state["done"] = True
            raise CrashError("crash before the DDL")
        alter(self, tmap, cc)
        state["altered"] = True

    def write_checkpoint(self: Any, position: str) -> None:
        if when == "between" and state["altered"] and not state["done"]:
            state["done"] = True
            raise CrashError("crash between the DDL and its checkpoint")
        write(self, position)

    def apply_batch(self: Any, batch: Any, position: str, idempotent: bool) -> int:
        count = apply(self, batch, position, idempotent)
        ddl = any(c.op.value == "DDL" for t in batch for c in t.changes)
        if when == "after" and ddl and not state["done"]:
            state["done"] = True
            raise CrashError("crash after the DDL")
        return count

    monkeypatch.setattr(MySqlApplier, "alter_column", alter_column)
    monkeypatch.setattr(MySqlApplier, "write_checkpoint", write_checkpoint)
    monkeypatch.setattr(MySqlApplier, "apply", apply_batch)


@pytest.mark.parametrize("when", ["before", "between", "after"])
def test_resume_after_a_crash_at_a_ddl(
    pg_db: str,
    mysql_db: str,
    mysql_target_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    when: str,
) -> None:
    """A task that dies at a DDL resumes with the columns of its saved position: the
    value written before the type change is read with the old type, the DDL is applied
    once, the data after it lands in the new columns."""
    _setup(pg_db)
    store = StateStore(tmp_path / "state.db")
    spec = _task("ddl", pg_db, mysql_db)
    run_task(spec, store)
    execute(pg_db, AROUND_A_DDL)
    _crash_once(monkeypatch, when)
    with pytest.raises(CrashError):
        run_task(spec, store)
    monkeypatch.undo()
    run_task(spec, store)
    run_task(_task("ref", pg_db, mysql_target_db, "full-load"), store)
    assert _columns(mysql_db, "items") == _columns(mysql_target_db, "items")
    _assert_like_source(pg_db, mysql_db, "items")
    assert store.data_errors("ddl") == []
    if when == "before":  # ("after": the crashed batch's statistics are lost with it)
        assert {t.name: t.ddls for t in store.tables("ddl")}["items"] == 3  # once each


def test_resume_reads_changes_before_a_ddl_with_the_old_columns(pg_db: str, tmp_path: Path) -> None:
    """DDL made while the task was stopped: the changes before it in the stream are read
    with the columns of the saved position, not the source's current ones."""
    _setup(pg_db)
    store = StateStore(tmp_path / "state.db")
    target = f"sqlite:///{tmp_path}/t.db"
    spec = _task("ddl", pg_db, target)
    run_task(spec, store)
    execute(
        pg_db,
        [
            "UPDATE items SET name = 'before', qty = 5 WHERE id = 1",
            "ALTER TABLE items RENAME COLUMN name TO title",
            "ALTER TABLE items ALTER COLUMN qty TYPE numeric(6,1)",
            "ALTER TABLE items ADD COLUMN extra numeric(10,3)",
            "UPDATE items SET extra = 2.25, title = 't', qty = 2.5 WHERE id = 2",
        ],
    )
    run_task(spec, store)
    reference = f"sqlite:///{tmp_path}/ref.db"
    run_task(_task("ref", pg_db, reference, "full-load"), store)
    assert _columns(target, "items") == _columns(reference, "items")
    _assert_like_source(pg_db, target, "items")


# -- settings, privileges, task delete ---------------------------------------------------


def _artifacts(url: str) -> dict[str, list[str]]:
    """The DDL-capture objects in a database, and what its publications hold."""
    conn = connect(url)
    try:
        triggers = query(conn, "SELECT evtname FROM pg_event_trigger ORDER BY 1")
        tables = query(
            conn,
            "SELECT schemaname || '.' || tablename FROM pg_tables "
            "WHERE tablename LIKE 'opendms%' ORDER BY 1",
        )
        functions = query(conn, "SELECT proname FROM pg_proc WHERE proname LIKE 'opendms%'")
        published = query(
            conn, "SELECT pubname || ':' || tablename FROM pg_publication_tables ORDER BY 1"
        )
    finally:
        conn.close()
    return {
        "triggers": [r[0] for r in triggers],
        "tables": [r[0] for r in tables],
        "functions": sorted(r[0] for r in functions),
        "published": [r[0] for r in published],
    }


def test_capture_ddls_false_creates_nothing_and_follows_added_columns(
    pg_db: str, mysql_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CaptureDdls=false: no trigger, no audit table; the columns of the stream's relation
    messages still bring added columns and type changes; a renamed (or dropped) column is
    kept on the target, with a warning, so no value is lost."""
    _setup(pg_db)
    store = StateStore(tmp_path / "state.db")
    spec = _task("ddl", {"url": pg_db, "settings": "CaptureDdls=false"}, mysql_db)
    run_task(spec, store)
    found = _artifacts(pg_db)
    assert found["triggers"] == found["tables"] == found["functions"] == []
    assert all(not p.endswith("opendms_ddl_audit") for p in found["published"])
    execute(
        pg_db,
        [
            "ALTER TABLE items ADD COLUMN extra numeric(10,3)",
            "UPDATE items SET extra = 1.125 WHERE id = 1",
            "ALTER TABLE items RENAME COLUMN name TO title",
            "UPDATE items SET title = 'renamed' WHERE id = 2",
            "ALTER TABLE items ALTER COLUMN qty TYPE bigint",
            "UPDATE items SET qty = 5000000000 WHERE id = 3",
        ],
    )
    with caplog.at_level("WARNING"):
        run_task(spec, store)
    assert [c for c, _ in _columns(mysql_db, "items")] == [
        "id",
        "name",
        "price",
        "qty",
        "born",
        "extra",
        "title",
    ]
    rows = {r[0]: r for r in _rows(mysql_db, "items")}
    assert rows[1][5] == Decimal("1.125") and rows[2][1:2] + rows[2][6:] == ("item 2", "renamed")
    assert rows[3][3] == 5_000_000_000 and dict(_columns(mysql_db, "items"))["qty"] == "bigint(20)"
    assert "column name is no longer sent by the source" in caplog.text


def _role_url(url: str, role: str) -> str:
    parsed = EndpointURL.parse(url)
    return f"postgresql://{role}@{parsed.host}:{parsed.port}/{parsed.database}"


@pytest.fixture
def plain_user(pg_db: str) -> Any:
    """A non-superuser with REPLICATION that owns the source tables (yields its URL)."""
    role = "plain_" + os.urandom(4).hex()
    database = EndpointURL.parse(pg_db).database
    _setup(pg_db)
    owns = [f"ALTER TABLE {t} OWNER TO {role}" for t in ("items", "gone", "oldname", "emptied")]
    execute(
        pg_db,
        [
            f"CREATE ROLE {role} LOGIN REPLICATION",
            f"GRANT CREATE ON DATABASE {database} TO {role}",
            f"GRANT CREATE, USAGE ON SCHEMA public TO {role}",
            *owns,
        ],
    )
    yield _role_url(pg_db, role)
    execute(pg_db, [f"DROP OWNED BY {role}", f"DROP ROLE {role}"])


def test_non_superuser_is_told_to_set_capture_ddls_false(
    pg_db: str, plain_user: str, tmp_path: Path
) -> None:
    """Creating the event trigger needs a superuser: assess says so and what to do, the
    task stops with the same one line; with CaptureDdls=false it runs."""
    from opendms.assess import assess
    from opendms.errors import PrivilegeError

    target = f"sqlite:///{tmp_path}/t.db"
    spec = _task("ddl", plain_user, target)
    [check] = [c for c in assess(spec) if c.id == "pg-ddl-capture"]
    assert check.status.value == "failed" and "needs a superuser" in check.message
    assert "CaptureDdls=false" in check.remediation and "SUPERUSER" in check.remediation
    with pytest.raises(PrivilegeError, match="CaptureDdls=false"):
        run_task(spec, StateStore(tmp_path / "state.db"))
    assert _artifacts(pg_db)["triggers"] == []

    spec = _task("ddl", {"url": plain_user, "settings": {"CaptureDdls": "false"}}, target)
    [check] = [c for c in assess(spec) if c.id == "pg-ddl-capture"]
    assert check.status.value == "passed"
    run_task(spec, StateStore(tmp_path / "state.db"))
    assert len(_rows(target, "items")) == 20


def _cli(state: Path, *args: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "opendms.cli.main", "--state", str(state), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_task_delete_drops_the_ddl_capture_objects_with_the_last_task(
    pg_db: str, tmp_path: Path
) -> None:
    """Two tasks share the DDL-capture objects (here in DdlArtifactsSchema ``dms``, DDL
    captured there too); deleting the first keeps them, deleting the second drops the
    event triggers, the function and the tables."""
    _setup(pg_db)
    state = tmp_path / "state.db"
    source = {"url": pg_db, "settings": {"DdlArtifactsSchema": "dms"}}
    for name in ("first", "second"):
        body = {
            "name": name,
            "source": source,
            "target": f"sqlite:///{tmp_path}/{name}.db",
            "migration_type": "full-load-and-cdc",
        }
        file = tmp_path / f"{name}.yaml"
        file.write_text(yaml.safe_dump(body))
        code, out = _cli(state, "task", "run", str(file))
        assert code == 0, out
    found = _artifacts(pg_db)
    assert found["triggers"] == ["opendms_intercept_ddl_dms", "opendms_intercept_drop_dms"]
    assert found["tables"] == [
        "dms.opendms_ddl_audit",
        "dms.opendms_ddl_rules",
        "dms.opendms_ddl_tables",
    ]
    assert found["functions"] == ["opendms_ddl_describe", "opendms_intercept_ddl"]
    execute(pg_db, ["ALTER TABLE items ADD COLUMN extra int", "UPDATE items SET extra = 7"])
    code, out = _cli(state, "task", "run", str(tmp_path / "first.yaml"))
    assert code == 0, out
    assert {r[-1] for r in _rows(f"sqlite:///{tmp_path}/first.db", "items")} == {7}

    code, out = _cli(state, "task", "delete", "first")
    assert code == 0, out
    assert _artifacts(pg_db)["triggers"] == found["triggers"]
    code, out = _cli(state, "task", "delete", "second")
    assert code == 0, out
    assert _artifacts(pg_db) == {"triggers": [], "tables": [], "functions": [], "published": []}


def test_a_source_with_a_for_all_tables_publication(pg_db: str, tmp_path: Path) -> None:
    """Another subscriber's FOR ALL TABLES publication publishes opendms's DDL-capture
    tables too: each needs a replica identity, or the task could not even start (deleting
    its selection rules failed)."""
    execute(pg_db, [*SETUP, "CREATE PUBLICATION everything FOR ALL TABLES"])
    store = StateStore(tmp_path / "state.db")
    target = f"sqlite:///{tmp_path}/t.db"
    spec = _task("ddl", pg_db, target)
    run_task(spec, store)
    execute(pg_db, ["ALTER TABLE items ADD COLUMN extra int", "UPDATE items SET extra = 7"])
    run_task(spec, store)  # the rules are written again at every start
    assert {c for c, _ in _columns(target, "items")} >= {"extra"}
    assert {r[-1] for r in _rows(target, "items")} == {7}
