"""Full-load guards: a table never copied onto itself, target name collisions, PostgreSQL
inheritance and partitions read once, multi-dimensional arrays, stops and unknown errors."""

from __future__ import annotations

import logging
import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.dataset as ds
import pytest

from opendms.config import task_from_dict
from opendms.endpoints import open_source, open_target, same_database
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.sqlite.source import SQLiteSource
from opendms.engine.fullload import FullLoad
from opendms.engine.plan import task_mappings
from opendms.engine.unitcopy import UnitReport, UnitResult, UnitWork
from opendms.errors import ConfigError, TaskError
from opendms.service.run import run_task
from opendms.state import StateStore, TableState
from tests.support.servers import MariaDBServer

SELECT_ALL = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "all",
    "object-locator": {"schema-name": "%", "table-name": "%"},
    "rule-action": "include",
}


def _rules(*extra: dict[str, Any], select: dict[str, Any] = SELECT_ALL) -> dict[str, Any]:
    return {"rules": [select, *extra]}


def _table_rule(action: str, schema: str, table: str, value: str = "") -> dict[str, Any]:
    rule = {
        "rule-type": "transformation",
        "rule-id": "2",
        "rule-name": "t",
        "rule-target": "table",
        "object-locator": {"schema-name": schema, "table-name": table},
        "rule-action": action,
    }
    return {**rule, "value": value} if value else rule


def _parallel(schema: str, table: str, parallel: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule-type": "table-settings",
        "rule-id": "3",
        "rule-name": "p",
        "object-locator": {"schema-name": schema, "table-name": table},
        "parallel-load": parallel,
    }


def _run(
    tmp_path: Path,
    source: str,
    target: str,
    mappings: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> StateStore:
    spec: dict[str, Any] = {"name": "rv", "source": source, "target": target}
    if mappings is not None:
        spec["table_mappings"] = mappings
    if settings is not None:
        spec["task_settings"] = settings
    store = StateStore(tmp_path / "state.db")
    run_task(task_from_dict(spec, where="test"), store)
    return store


def _states(store: StateStore) -> dict[str, tuple[TableState, str]]:
    return {t.name: (t.state, t.error) for t in store.tables("rv")}


def _sqlite(path: Path, *statements: str) -> str:
    with sqlite3.connect(path) as conn:
        for sql in statements:
            conn.execute(sql)
    return f"sqlite:///{path}"


def _pg(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# -- 1. the self-copy guard ------------------------------------------------------


def test_self_copy_sqlite_case_insensitive_name(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    url = _sqlite(
        db, "CREATE TABLE orders (id integer primary key)", "INSERT INTO orders VALUES (1)"
    )
    rules = _rules(_table_rule("convert-uppercase", "main", "orders"))
    with pytest.raises(TaskError, match="source table itself"):
        _run(tmp_path, url, url, rules)
    assert _count(db, "orders") == 1


def test_self_copy_sqlite_relative_and_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "src.db"
    _sqlite(db, "CREATE TABLE orders (id integer primary key)", "INSERT INTO orders VALUES (1)")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TaskError, match="source table itself"):
        _run(tmp_path, "sqlite:///src.db", f"sqlite:///{db}")
    assert _count(db, "orders") == 1


def test_self_copy_mysql_source_without_database(
    mysql_db: str, mariadb_server: MariaDBServer, tmp_path: Path
) -> None:
    database = mysql_db.rsplit("/", 1)[1]
    mariadb_server.execute(
        "CREATE TABLE orders (id int primary key); INSERT INTO orders VALUES (1), (2)", db=database
    )
    select = {**SELECT_ALL, "object-locator": {"schema-name": database, "table-name": "%"}}
    server_url = mysql_db.rsplit("/", 1)[0] + "/"
    with pytest.raises(TaskError, match="source table itself"):
        _run(tmp_path, server_url, mysql_db, _rules(select=select))
    assert mariadb_server.execute("SELECT count(*) FROM orders", db=database) == [(2,)]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("postgresql://u@db.example.com/shop", "postgres://v@db.example.com:5432/shop", True),
        ("postgresql://u@localhost:5433/shop", "postgresql://u@[::1]:5433/shop", True),
        ("postgresql://u@127.0.0.1/shop", "postgresql://u@localhost:5432/shop", True),
        ("postgresql://u@127.0.0.1/shop", "postgresql://u@localhost:5433/shop", False),
        ("postgresql://u@127.0.0.1/shop", "postgresql://u@127.0.0.1/other", False),
        ("mysql://u@localhost/", "mariadb://u@127.0.0.1:3306/shop", True),
        ("mysql://u@localhost/", "mysql://u@127.0.0.1:3307/shop", False),
    ],
)
def test_same_database_normalises_ports_and_hosts(a: str, b: str, same: bool) -> None:
    assert same_database(EndpointURL.parse(a), EndpointURL.parse(b)) is same


# -- 2. two source tables into one target table ------------------------------------


def test_rename_collision_is_a_config_error(tmp_path: Path) -> None:
    src = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE a (id integer, v text)",
        "CREATE TABLE b (id integer, v text)",
    )
    rules = _rules(_table_rule("rename", "main", "%", "x"))
    with pytest.raises(ConfigError, match=r"\$\.table_mappings.*main\.a and main\.b") as info:
        _run(tmp_path, src, f"sqlite:///{tmp_path / 'dst.db'}", rules)
    assert info.value.path == "$.table_mappings"
    assert not (tmp_path / "dst.db").exists() or _tables(tmp_path / "dst.db") == []


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]


def test_pg_names_differing_in_case_collide_in_sqlite(pg_db: str, tmp_path: Path) -> None:
    _pg(pg_db, 'CREATE TABLE "Users" (id int); CREATE TABLE users (id int)')
    with pytest.raises(
        ConfigError, match=r"public\.Users and public\.users|public\.users and public\.Users"
    ):
        _run(tmp_path, pg_db, f"sqlite:///{tmp_path / 'dst.db'}")


@pytest.mark.parametrize("target", ["sqlite", "mysql"])
def test_same_name_in_two_schemas_collides(
    target: str, pg_db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _pg(
        pg_db,
        "CREATE SCHEMA a; CREATE SCHEMA b; CREATE TABLE a.t (id int); CREATE TABLE b.t (id int)",
    )
    url = (
        f"sqlite:///{tmp_path / 'dst.db'}"
        if target == "sqlite"
        else str(request.getfixturevalue("mysql_target_db"))
    )
    with pytest.raises(ConfigError, match=r"a\.t and b\.t"):
        _run(tmp_path, pg_db, url)


def test_same_name_in_two_schemas_is_fine_into_postgres(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    _pg(
        pg_db,
        "CREATE SCHEMA a; CREATE SCHEMA b; CREATE TABLE a.t (id int); CREATE TABLE b.t (id int)",
    )
    store = _run(tmp_path, pg_db, pg_target_db)
    assert [t.state for t in store.tables("rv")] == [TableState.COMPLETED] * 2


# -- 3. inheritance and partitions ----------------------------------------------------

INHERITANCE = """
CREATE TABLE parent (id int, v text);
CREATE TABLE child (extra int) INHERITS (parent);
INSERT INTO parent VALUES (1, 'p');
INSERT INTO child VALUES (2, 'c', 9);
"""


def test_inheritance_parent_rows_are_read_once(pg_db: str, tmp_path: Path) -> None:
    _pg(pg_db, INHERITANCE)
    _run(tmp_path, pg_db, f"sqlite:///{tmp_path / 'dst.db'}")
    with sqlite3.connect(tmp_path / "dst.db") as conn:
        assert conn.execute("SELECT * FROM parent").fetchall() == [(1, "p")]
        assert conn.execute("SELECT * FROM child").fetchall() == [(2, "c", 9)]


def test_inheritance_parent_raw_copy_with_ranges(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    _pg(
        pg_db,
        INHERITANCE + "INSERT INTO parent VALUES (5, 'q'); INSERT INTO child VALUES (6, 'd', 1)",
    )
    ranges = _parallel(
        "public", "parent", {"type": "ranges", "columns": ["id"], "boundaries": [["3"]]}
    )
    _run(tmp_path, pg_db, pg_target_db, _rules(ranges))
    with psycopg.connect(pg_target_db) as conn:
        rows = conn.execute("SELECT id FROM ONLY parent ORDER BY id").fetchall()
    assert rows == [(1,), (5,)]


PARTITIONED = """
CREATE TABLE ev (id int, v text) PARTITION BY RANGE (id);
CREATE TABLE "Ev_Low" PARTITION OF ev FOR VALUES FROM (0) TO (10);
CREATE TABLE ev_high PARTITION OF ev FOR VALUES FROM (10) TO (100);
CREATE TABLE unrelated (id int, v text);
INSERT INTO ev VALUES (1, 'a'), (2, 'b'), (50, 'c');
INSERT INTO unrelated VALUES (7, 'x');
"""


def _ev_rules(partitions: list[str]) -> dict[str, Any]:
    select = {**SELECT_ALL, "object-locator": {"schema-name": "public", "table-name": "ev"}}
    parallel = _parallel("public", "ev", {"type": "partitions-list", "partitions": partitions})
    return _rules(parallel, select=select)


def test_partitions_list_names_are_quoted(pg_db: str, tmp_path: Path) -> None:
    _pg(pg_db, PARTITIONED)
    lake = tmp_path / "lake"
    _run(
        tmp_path,
        pg_db,
        f"file://{lake}?DataFormat=parquet",
        _ev_rules(["Ev_Low", "public.ev_high"]),
    )
    rows = ds.dataset(str(lake / "public/ev"), format="parquet").to_table().to_pylist()
    assert sorted(r["id"] for r in rows) == [1, 2, 50]


def test_partitions_list_must_name_partitions(pg_db: str, tmp_path: Path) -> None:
    _pg(pg_db, PARTITIONED)
    lake = tmp_path / "lake"
    with pytest.raises(TaskError):
        _run(
            tmp_path,
            pg_db,
            f"file://{lake}?DataFormat=parquet",
            _ev_rules(["ev_high", "unrelated"]),
        )
    state, error = _states(StateStore(tmp_path / "state.db"))["ev"]
    assert state is TableState.ERROR and "'unrelated' is not a partition" in error


# -- 4. multi-dimensional arrays -------------------------------------------------------


def test_multidimensional_arrays_are_data_errors(pg_db: str, tmp_path: Path) -> None:
    _pg(
        pg_db,
        "CREATE TABLE arr (id int primary key, a int[], t text[]); "
        "INSERT INTO arr VALUES (1, '{{1,2},{3,4}}', '{x}'), (2, '[0:1]={5,6}', '{y}'), "
        "(3, '{7,8}', '{{p,q}}'), (4, '{9}', '{z}'), (5, '{}', NULL)",
    )
    lake = tmp_path / "lake"
    store = _run(tmp_path, pg_db, f"file://{lake}?DataFormat=parquet")
    rows = ds.dataset(str(lake / "public/arr"), format="parquet").to_table().to_pylist()
    assert sorted((r["id"], r["a"]) for r in rows) == [(4, [9]), (5, [])]
    errors = sorted((e[1], e[2]) for e in store.data_errors("rv"))
    assert errors == [("id=1", "a"), ("id=2", "a"), ("id=3", "t")]
    (table,) = store.tables("rv")
    assert table.error_rows == 3 and table.full_load_rows == 2


# -- 5. stops ------------------------------------------------------------------------


class _DeadWorker:
    """An executor whose units never run: each future fails as when a worker dies."""

    def __init__(self, workers: int, stop: threading.Event) -> None:
        self.stop, self.cancelled = stop, False

    def submit(self, work: UnitWork, report: UnitReport) -> Future[UnitResult]:
        future: Future[UnitResult] = Future()
        future.set_exception(ValueError("boom"))
        return future

    def cancel(self) -> None:
        self.cancelled = True
        self.stop.set()

    def close(self) -> None:
        pass


def test_an_executor_failure_stops_the_load(tmp_path: Path) -> None:
    src = _sqlite(tmp_path / "src.db", "CREATE TABLE a (id integer primary key)")
    spec = task_from_dict(
        {"name": "rv", "source": src, "target": f"sqlite:///{tmp_path / 'dst.db'}"}, where="t"
    )
    executors: list[_DeadWorker] = []

    def factory(workers: int, stop: threading.Event) -> _DeadWorker:
        executors.append(_DeadWorker(workers, stop))
        return executors[-1]

    source, target = open_source(src), open_target(spec.target.url)
    store = StateStore(tmp_path / "state.db")
    loader = FullLoad(spec, source, target, task_mappings(spec), store, executor=factory)
    with pytest.raises(ValueError, match="boom"):
        loader.run()
    source.close()
    target.close()
    assert loader.stop.is_set() and executors[0].cancelled


def test_stop_task_ends_the_other_tables(tmp_path: Path) -> None:
    src = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE a (id integer primary key, n smallint)",
        "INSERT INTO a VALUES (1, 100000)",
        "CREATE TABLE b (id integer primary key)",
        "CREATE TABLE c (id integer primary key)",
    )
    settings = {
        "FullLoadSettings": {"MaxFullLoadSubTasks": 1},
        "ErrorBehavior": {"DataErrorPolicy": "STOP_TASK"},
    }
    with pytest.raises(TaskError, match=r"main\.a"):
        _run(tmp_path, src, f"sqlite:///{tmp_path / 'dst.db'}", settings=settings)
    states = _states(StateStore(tmp_path / "state.db"))
    assert states["a"][0] is TableState.ERROR
    stopped = (TableState.CANCELLED, "task stopped before this table finished")
    assert states["b"] == stopped and states["c"] == stopped


# -- 6. unknown exceptions ------------------------------------------------------------


def test_unknown_exception_fails_only_its_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = _sqlite(
        tmp_path / "src.db",
        "CREATE TABLE a (id integer primary key)",
        "CREATE TABLE b (id integer primary key)",
        "INSERT INTO b VALUES (1)",
    )
    real_read = SQLiteSource.read

    def read(self: SQLiteSource, plan: Any, snapshot: str | None) -> Any:
        if plan.table.name == "a":
            raise ValueError("driver exploded")
        return real_read(self, plan, snapshot)

    monkeypatch.setattr(SQLiteSource, "read", read)
    with caplog.at_level(logging.ERROR), pytest.raises(TaskError, match=r"main\.a"):
        _run(tmp_path, src, f"sqlite:///{tmp_path / 'dst.db'}")
    states = _states(StateStore(tmp_path / "state.db"))
    assert states["a"] == (TableState.ERROR, "internal error: ValueError('driver exploded')")
    assert states["b"][0] is TableState.COMPLETED
    traced = [r for r in caplog.records if r.exc_info and r.levelno == logging.ERROR]
    assert traced and "driver exploded" in str(traced[0].exc_info[1])  # type: ignore[index]


def test_adbc_errors_are_one_line_endpoint_errors(pg_db: str, tmp_path: Path) -> None:
    _pg(pg_db, "CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 10)")
    ranges = _parallel(
        "public", "t", {"type": "ranges", "columns": ["id"], "boundaries": [["abc"]]}
    )
    with pytest.raises(TaskError):
        _run(tmp_path, pg_db, f"file://{tmp_path / 'lake'}", _rules(ranges))
    state, error = _states(StateStore(tmp_path / "state.db"))["t"]
    assert state is TableState.ERROR
    assert "invalid input syntax" in error and "internal error" not in error
    assert "\n" not in error and error.startswith("postgresql://")
