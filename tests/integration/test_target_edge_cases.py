"""Target edge cases: partial lake files, index names, secrets kept out of messages,
values the target refuses, all-bad batches and SQLite target errors."""

from __future__ import annotations

import gc
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from opendms.arrowutil import convert_rows
from opendms.config import task_from_dict
from opendms.endpoints.base import EndpointURL, mask
from opendms.endpoints.postgres.conn import translate
from opendms.engine.task import register
from opendms.errors import ConfigError, TaskError
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.integration.readback import mysql_connect, s3_filesystem
from tests.support.endpoints import target_url

SUSPEND = {"ErrorBehavior": {"DataErrorPolicy": "SUSPEND_TABLE"}}
LOG_ERROR = {"ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}}


def _spec(source: Any, target: Any, settings: dict[str, Any] | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"name": "rv", "source": source, "target": target, **extra}
    if settings:
        body["task_settings"] = settings
    return task_from_dict(body, where="test")


def _run(
    tmp_path: Path, source: str, target: str, settings: Any = None, **extra: Any
) -> StateStore:
    store = StateStore(tmp_path / "state.db")
    run_task(_spec(source, target, settings, **extra), store)
    return store


def _failed_run(tmp_path: Path, source: str, target: str, settings: Any = None) -> StateStore:
    with pytest.raises(TaskError):
        _run(tmp_path, source, target, settings)
    return StateStore(tmp_path / "state.db")


def _sqlite(path: Path, *sql: str) -> str:
    conn = sqlite3.connect(path)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def _pg(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def _mysql(url: str, *sql: str) -> None:
    conn = mysql_connect(url)
    with conn.cursor() as cur:
        for statement in sql:
            cur.execute(statement)
    conn.commit()
    conn.close()


# -- 1. an aborted lake writer publishes nothing ---------------------------------


def _failing_source(tmp_path: Path) -> str:
    """20 good rows, then one whose value fits no int16 (a row error)."""
    rows = ", ".join(f"({i}, {i})" for i in range(1, 21))
    return _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE a (id integer PRIMARY KEY, n smallint)",
        f"INSERT INTO a VALUES {rows}, (21, 100000), (22, 1)",
    )


def _unraisable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(repr(u.exc_value)))
    return seen


def test_aborted_s3_writer_leaves_no_object(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noise = _unraisable(monkeypatch)
    target = s3_url + "&DataFormat=parquet"
    settings = {**SUSPEND, "FullLoadSettings": {"CommitRate": 5}}
    _failed_run(tmp_path, _failing_source(tmp_path), target, settings)
    gc.collect()
    fs, root = s3_filesystem(s3_url)
    found = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    files = [f.path for f in found if f.type == pafs.FileType.File and f.size]
    assert files == []
    assert noise == []


def test_aborted_local_writer_leaves_no_tmp_and_prepare_clears_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    noise = _unraisable(monkeypatch)
    source = _failing_source(tmp_path)
    lake = tmp_path / "lake"
    _failed_run(tmp_path, source, f"file://{lake}?DataFormat=parquet", SUSPEND)
    gc.collect()
    assert [p.name for p in lake.rglob("*") if p.is_file()] == []
    assert noise == []
    stale = lake / "main/a/LOAD00000007.parquet.tmp"
    stale.write_bytes(b"partial")
    settings = {**LOG_ERROR, "FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}
    _run(tmp_path, source, f"file://{lake}?DataFormat=parquet", settings)
    names = sorted(p.name for p in (lake / "main/a").iterdir())
    assert names == ["LOAD00000001.parquet"]
    assert pq.read_table(lake / "main/a/LOAD00000001.parquet").num_rows == 21


# -- 2. index names ---------------------------------------------------------------


def _two_email_indexes(mysql_db: str) -> None:
    _mysql(
        mysql_db,
        "CREATE TABLE a (id INT PRIMARY KEY, email VARCHAR(50), UNIQUE KEY email (email))",
        "CREATE TABLE b (id INT PRIMARY KEY, email VARCHAR(50), KEY email (email))",
        "INSERT INTO a VALUES (1, 'x')",
        "INSERT INTO b VALUES (1, 'x'), (2, 'x')",
    )


def test_same_index_name_on_two_tables_into_sqlite(mysql_db: str, tmp_path: Path) -> None:
    _two_email_indexes(mysql_db)
    _run(tmp_path, mysql_db, f"sqlite:///{tmp_path / 'dst.db'}")
    conn = sqlite3.connect(tmp_path / "dst.db")
    found = conn.execute(
        "SELECT name, tbl_name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
    ).fetchall()
    assert sorted(found) == [("a_email", "a"), ("b_email", "b")]


def test_same_index_name_on_two_tables_into_postgres(
    mysql_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    _two_email_indexes(mysql_db)
    _run(tmp_path, mysql_db, pg_target_db)
    with psycopg.connect(pg_target_db) as conn:
        found = conn.execute(
            "SELECT indexname, tablename FROM pg_indexes WHERE indexname LIKE '%email'"
        ).fetchall()
    assert sorted(found) == [("a_email", "a"), ("b_email", "b")]


def test_index_name_taken_by_another_table_is_a_clear_error(tmp_path: Path) -> None:
    source = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE a (id integer PRIMARY KEY, v text)",
        "CREATE INDEX v ON a (v)",
    )
    target = _sqlite(
        tmp_path / "dst.db", "CREATE TABLE other (v text)", "CREATE INDEX a_v ON other (v)"
    )
    store = _failed_run(tmp_path, source, target)
    error = store.tables("rv")[0].error
    assert "index 'a_v' already exists on table 'other'" in error
    assert "internal error" not in error


def test_postgres_index_name_taken_by_another_table(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    _pg(pg_db, "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE INDEX a_v ON a (v)")
    _pg(pg_target_db, "CREATE TABLE other (v text); CREATE INDEX a_v ON other (v)")
    store = _failed_run(tmp_path, pg_db, pg_target_db)
    assert "index 'a_v'" in store.tables("rv")[0].error
    assert "'other'" in store.tables("rv")[0].error


def test_mysql_target_rerun_keeps_existing_indexes(mysql_target_db: str, tmp_path: Path) -> None:
    source = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE a (id integer PRIMARY KEY, v text)",
        "CREATE INDEX a_v ON a (v)",
        "INSERT INTO a VALUES (1, 'x'), (2, 'y')",
    )
    settings = {"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}}
    store = _run(tmp_path, source, mysql_target_db, settings)
    assert store.tables("rv")[0].state is TableState.COMPLETED
    first = _mysql_indexes(mysql_target_db, "a")
    # the source's key and index, each on its column (text: a prefix, README "Types")
    assert {(name, columns[0][0]) for name, columns in first.items()} == {
        ("PRIMARY", "id"),
        ("a_v", "v"),
    }, first
    _mysql(mysql_target_db, "CREATE INDEX mine ON a (id, v(8))")  # the user's own index
    before = _mysql_indexes(mysql_target_db, "a")
    store = _run(tmp_path, source, mysql_target_db, settings)
    assert store.tables("rv")[0].state is TableState.COMPLETED
    assert _mysql_indexes(mysql_target_db, "a") == before  # names and definitions
    assert before == {**first, "mine": [("id", None, 1, "BTREE"), ("v", 8, 1, "BTREE")]}
    conn = mysql_connect(mysql_target_db)
    with conn.cursor() as cur:
        cur.execute("SELECT id, v FROM a ORDER BY id")
        assert cur.fetchall() == ((1, "x"), (2, "y"))  # loaded once, not twice
    conn.close()


def _mysql_indexes(url: str, table: str) -> dict[str, list[tuple[Any, ...]]]:
    """A table's indexes from information_schema.statistics: name -> its columns in
    order, each (column, prefix length, non-unique, index type)."""
    conn = mysql_connect(url)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT index_name, column_name, sub_part, non_unique, index_type "
            "FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND table_name = %s ORDER BY index_name, seq_in_index",
            (table,),
        )
        rows = cur.fetchall()
    conn.close()
    out: dict[str, list[tuple[Any, ...]]] = {}
    for name, column, prefix, non_unique, kind in rows:
        out.setdefault(name, []).append((column, prefix, int(non_unique), kind))
    return out


# -- 3. passwords never leak ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "password"),
    [
        ("postgresql://app:p#ss@db.example.com:5432/shop", "db.example.com", 5432, "p#ss"),
        ("mysql://app:12#x@h/db", "h", None, "12#x"),
        ("postgresql://app:a/b@db.example.com/shop", "db.example.com", None, "a/b"),
        ("postgresql://app:12?x@h/db", "h", None, "12?x"),
        ("postgresql://app:50%off@h/db", "h", None, "50%off"),
    ],
)
def test_reserved_characters_in_the_password(
    url: str, host: str, port: int | None, password: str
) -> None:
    parsed = EndpointURL.parse(url)
    assert (parsed.host, parsed.port, parsed.user, str(parsed.password)) == (
        host,
        port,
        "app",
        password,
    )
    assert parsed.database in ("shop", "db")
    assert password not in str(parsed) and password not in mask(url)
    assert str(parsed).startswith(url.split(":")[0] + "://app:***@")


def test_errors_about_urls_mask_the_password() -> None:
    with pytest.raises(ConfigError) as bad_port:
        EndpointURL.parse("postgresql://app:p#ss@db:abc/shop")
    assert "p#ss" not in str(bad_port.value) and "percent-encode" in str(bad_port.value)
    with pytest.raises(ConfigError) as no_scheme:
        EndpointURL.parse("1app:hunter2@db/shop")
    assert "hunter2" not in str(no_scheme.value)


def test_secret_query_keys_are_masked() -> None:
    url = "postgresql://app@db/shop?password=hunter2&sslpassword=key2&sslmode=require"
    assert mask(url) == "postgresql://app@db/shop?password=***&sslpassword=***&sslmode=require"
    s3 = "s3://bucket/p?aws_secret_access_key=SECRET&aws_access_key_id=AK"
    assert (
        str(EndpointURL.parse(s3)) == "s3://bucket/p?aws_secret_access_key=***&aws_access_key_id=AK"
    )


def test_driver_text_never_shows_the_password() -> None:
    url = EndpointURL.parse("postgresql://app:50%25off@db/shop")
    error = translate(Exception('invalid percent-encoded token: "50%off"'), url)
    assert "50%off" not in str(error) and "***" in str(error)


def test_state_store_never_holds_secret_settings(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    target = {
        "url": "s3://bucket/p?aws_secret_access_key=TOPSECRET",
        "settings": {"AWS_Secret_Access_Key": "SETTINGSECRET", "DataFormat": "parquet"},
    }
    source = {"url": "postgresql://app:pw1@db/shop", "settings": {"Password": "pw2"}}
    register(_spec(source, target), store)
    with sqlite3.connect(tmp_path / "state.db") as conn:
        saved = json.dumps(conn.execute("SELECT * FROM tasks").fetchall())
    for secret in ("TOPSECRET", "SETTINGSECRET", "pw1", "pw2"):
        assert secret not in saved
    assert "parquet" in saved


# -- 4. values longer than varchar(n) are row errors -------------------------------


@pytest.mark.parametrize("kind", ["pg", "mysql"])
def test_too_long_text_is_a_row_error(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = target_url(kind, request, tmp_path)
    source = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE s (id integer PRIMARY KEY, st varchar(2), c char(3))",
        "INSERT INTO s VALUES (1, 'WA', 'abc'), (2, 'Wash.', 'ab'), (3, 'OR', 'abcd')",
    )
    store = _run(tmp_path, source, target, LOG_ERROR)
    stats = store.tables("rv")[0]
    assert (stats.state, stats.full_load_rows, stats.error_rows) == (TableState.COMPLETED, 1, 2)
    logged = sorted((key, col, why) for _, key, col, why in store.data_errors("rv"))
    assert logged == [
        ("id=2", "st", "longer than varchar(2)"),
        ("id=3", "c", "longer than char(3)"),
    ]


# -- 5. a batch whose every value is bad rejects rows, it does not fail the table ----


def test_convert_rows_all_bad_values_are_rejected_rows() -> None:
    def to_int(array: pa.Array[Any]) -> pa.Array[Any]:
        return pc.cast(array, pa.int16())

    array, bad = convert_rows(pa.array(["x", "y"]), to_int)
    assert (array.type, array.null_count, bad) == (pa.int16(), 2, [0, 1])
    with pytest.raises(pa.ArrowNotImplementedError):
        convert_rows(pa.array([[1]]), lambda a: pc.cast(a, pa.time32("s")))


def test_postgres_batch_of_only_bad_values(pg_db: str, tmp_path: Path) -> None:
    _pg(
        pg_db,
        "CREATE TABLE nums (id int PRIMARY KEY, n numeric(6,2));"
        "INSERT INTO nums VALUES (1, 'NaN'), (2, 'NaN')",
    )
    store = _run(tmp_path, pg_db, f"sqlite:///{tmp_path / 'dst.db'}", LOG_ERROR)
    stats = store.tables("rv")[0]
    assert (stats.state, stats.full_load_rows, stats.error_rows) == (TableState.COMPLETED, 0, 2)


def test_mysql_outcome_does_not_depend_on_batch_size(mysql_db: str, tmp_path: Path) -> None:
    _mysql(
        mysql_db,
        "SET SESSION sql_mode = ''",  # zero dates: values the source cannot carry
        "CREATE TABLE spans (id INT PRIMARY KEY, d DATE)",
        "INSERT INTO spans VALUES (1, '2024-01-01'), (2, '0000-00-00'), (3, '2024-00-10')",
    )
    for rate in (1, 3):
        settings = {**LOG_ERROR, "FullLoadSettings": {"CommitRate": rate}}
        store = _run(tmp_path, mysql_db, f"sqlite:///{tmp_path / f'dst{rate}.db'}", settings)
        stats = store.tables("rv")[0]
        assert (stats.state, stats.full_load_rows, stats.error_rows) == (
            TableState.COMPLETED,
            1,
            2,
        )


def test_numeric_wider_than_decimal256_travels_as_text(pg_db: str, tmp_path: Path) -> None:
    _pg(pg_db, "CREATE TABLE bign (id int PRIMARY KEY, n numeric(100,2))")
    _pg(pg_db, "INSERT INTO bign VALUES (1, 1.25)")
    _run(tmp_path, pg_db, f"sqlite:///{tmp_path / 'dst.db'}")
    conn = sqlite3.connect(tmp_path / "dst.db")
    assert conn.execute("SELECT id, n FROM bign").fetchall() == [(1, "1.25")]


# -- 6. invalid UUID text into PostgreSQL -------------------------------------------


def test_invalid_uuid_is_a_row_error(pg_target_db: str, tmp_path: Path) -> None:
    source = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE u (id integer PRIMARY KEY, u uuid)",
        "INSERT INTO u VALUES (1, '6f1c2d7e-1111-2222-3333-444455556666'), (2, 'n/a')",
    )
    store = _run(tmp_path, source, pg_target_db, LOG_ERROR)
    stats = store.tables("rv")[0]
    assert (stats.state, stats.full_load_rows, stats.error_rows) == (TableState.COMPLETED, 1, 1)
    assert [(k, c) for _, k, c, _ in store.data_errors("rv")] == [("id=2", "u")]
    with psycopg.connect(pg_target_db) as conn:
        got = conn.execute("SELECT u::text FROM main.u").fetchall()
    assert got == [("6f1c2d7e-1111-2222-3333-444455556666",)]


# -- 7. SQLite target errors name the table ---------------------------------------


def test_sqlite_target_errors_are_one_line_endpoint_errors(tmp_path: Path) -> None:
    source = _sqlite(tmp_path / "src.db", "CREATE TABLE a (id integer PRIMARY KEY)")
    target = _sqlite(tmp_path / "dst.db", "CREATE TABLE t0 (x int)", "CREATE VIEW a AS SELECT 1")
    store = _failed_run(tmp_path, source, target)
    error = store.tables("rv")[0].error
    assert "table a:" in error and "DROP VIEW" in error
    assert "internal error" not in error and "\n" not in error
