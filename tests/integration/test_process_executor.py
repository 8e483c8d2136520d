"""The executor seam holds: a full load whose units run in other processes
(:class:`ProcessExecutor`, a spawn pool) loads the source's rows value for value, with
the same table statistics, data errors and log lines as in threads."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.dataset as ds
import pytest

from opendms.config import TaskSpec, task_from_dict
from opendms.endpoints import open_source, open_target
from opendms.engine.executor import ProcessExecutor, ThreadExecutor
from opendms.engine.fullload import STOPPED, FullLoad, LoadResult
from opendms.engine.plan import task_mappings
from opendms.state import StateStore, TableState


def _segments(schema: str) -> dict[str, Any]:
    return {
        "rule-type": "table-settings",
        "rule-id": "2",
        "rule-name": "segments",
        "object-locator": {"schema-name": schema, "table-name": "big"},
        "parallel-load": {"type": "ranges", "columns": ["id"], "boundaries": [["300"], ["700"]]},
    }


ALL = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "all",
    "object-locator": {"schema-name": "%", "table-name": "%"},
    "rule-action": "include",
}


def _spec(source: str, target: str, schema: str) -> TaskSpec:
    return task_from_dict(
        {
            "name": "proc",
            "source": source,
            "target": target,
            "table_mappings": {"rules": [ALL, _segments(schema)]},
            "task_settings": {"FullLoadSettings": {"CommitRate": 100, "MaxFullLoadSubTasks": 2}},
        },
        where="test",
    )


def _load(spec: TaskSpec, store: StateStore) -> LoadResult:
    source = open_source(spec.source.url, spec.source.settings)
    target = open_target(spec.target.url, spec.target.settings)
    try:
        load = FullLoad(spec, source, target, task_mappings(spec), store, executor=ProcessExecutor)
        return load.run()
    finally:
        target.close()
        source.close()


def _stats(store: StateStore) -> dict[str, tuple[TableState, int, int]]:
    return {t.name: (t.state, t.full_load_rows, t.error_rows) for t in store.tables("proc")}


def _sqlite_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def test_sqlite_to_sqlite_in_worker_processes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE big (id integer primary key, name text, x real, b blob)")
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?, ?)",
            [(i, f"n{i}" if i % 7 else None, i / 3, bytes([i % 256]) * 3) for i in range(1, 1001)],
        )
        conn.execute("CREATE TABLE small (id integer primary key, n smallint, t text)")
        conn.executemany("INSERT INTO small VALUES (?, ?, ?)", [(1, 5, "a"), (2, 100000, "b")])
    store = StateStore(tmp_path / "state.db")
    spec = _spec(f"sqlite:///{src}", f"sqlite:///{tmp_path / 'dst.db'}", "main")
    with caplog.at_level(logging.INFO, logger="opendms.fullload"):
        result = _load(spec, store)
    assert result.failed == {} and result.rows == 1001
    assert _sqlite_rows(tmp_path / "dst.db", "big") == _sqlite_rows(src, "big")
    assert _sqlite_rows(tmp_path / "dst.db", "small") == [(1, 5, "a")]
    assert _stats(store) == {
        "big": (TableState.COMPLETED, 1000, 0),
        "small": (TableState.COMPLETED, 1, 1),
    }
    assert [e[:3] for e in store.data_errors("proc")] == [("main.small", "id=2", "n")]
    said = [r.getMessage() for r in caplog.records]
    assert "table main.big: Arrow batches" in said  # a worker's log line, passed on
    assert any("row id=2 rejected" in m for m in said)


def _pg(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


def test_postgres_raw_copy_in_worker_processes(
    pg_db: str, pg_target_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _pg(
        pg_db,
        "CREATE TABLE big (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz, "
        "tags text[]); INSERT INTO big SELECT g, 'n' || g, g * 1.25, "
        "'2024-01-01'::timestamptz + g * interval '1 minute', ARRAY['a', g::text] "
        "FROM generate_series(1, 1000) g; "
        "CREATE TABLE single (id int PRIMARY KEY, payload jsonb); "
        "INSERT INTO single SELECT g, jsonb_build_object('g', g) FROM generate_series(1, 50) g",
    )
    store = StateStore(tmp_path / "state.db")
    with caplog.at_level(logging.INFO, logger="opendms.fullload"):
        result = _load(_spec(pg_db, pg_target_db, "public"), store)
    said = [r.getMessage() for r in caplog.records]
    assert said.count("table public.big: raw COPY pass-through") == 3  # three segments
    assert result.failed == {} and result.rows == 1050
    for table in ("big", "single"):
        sql = f"SELECT * FROM {table} ORDER BY id"
        assert _pg(pg_target_db, sql) == _pg(pg_db, sql), table
    assert _stats(store) == {
        "big": (TableState.COMPLETED, 1000, 0),
        "single": (TableState.COMPLETED, 50, 0),
    }
    keys = (
        "SELECT count(*) FROM pg_constraint "
        "WHERE contype = 'p' AND conrelid::regclass::text IN ('big', 'single')"
    )
    assert _pg(pg_target_db, keys) == [(2,)]  # the coordinator finished both tables


class _StopOnFirstRows:
    """Progress that asks the load to stop once rows arrive."""

    def __init__(self) -> None:
        self.load: FullLoad | None = None

    def table_started(self, name: str, estimated_rows: int) -> None:
        pass

    def advance(self, name: str, rows: int) -> None:
        if rows and self.load is not None:
            self.load.stop.set()

    def table_done(self, name: str, ok: bool) -> None:
        pass


def test_a_stop_reaches_the_worker_processes(tmp_path: Path) -> None:
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE big (id integer primary key, name text)")
        conn.executemany("INSERT INTO big VALUES (?, ?)", ((i, "x" * 50) for i in range(200_000)))
    spec = _spec(f"sqlite:///{src}", f"sqlite:///{tmp_path / 'dst.db'}", "main")
    store, progress = StateStore(tmp_path / "state.db"), _StopOnFirstRows()
    source, target = open_source(spec.source.url), open_target(spec.target.url)
    load = FullLoad(
        spec, source, target, task_mappings(spec), store, progress, executor=ProcessExecutor
    )
    progress.load = load
    try:
        result = load.run()
    finally:
        target.close()
        source.close()
    assert result.failed == {} and 0 < result.rows < 200_000
    (table,) = store.tables("proc")
    assert (table.state, table.error) == (TableState.CANCELLED, STOPPED)
    assert len(_sqlite_rows(tmp_path / "dst.db", "big")) == result.rows


@pytest.mark.parametrize(
    "executor", [ThreadExecutor, ProcessExecutor], ids=["threads", "processes"]
)
def test_every_unit_stamps_rows_with_the_task_start(tmp_path: Path, executor: Any) -> None:
    """UseTaskStartTimeForFullLoadTimestamp: units open targets of their own, at their
    own times; every row still carries the one time the task's target was opened."""
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as conn:
        for table in ("big", "other"):
            conn.execute(f"CREATE TABLE {table} (id integer primary key)")
            conn.executemany(f"INSERT INTO {table} VALUES (?)", [(i,) for i in range(1000)])
    lake = tmp_path / "lake"
    target = (
        f"file://{lake}?DataFormat=parquet&TimestampColumnName=ts"
        "&UseTaskStartTimeForFullLoadTimestamp=true"
    )
    spec = _spec(f"sqlite:///{src}", target, "main")
    source, opened = open_source(spec.source.url), open_target(spec.target.url)
    store = StateStore(tmp_path / "state.db")
    try:
        FullLoad(spec, source, opened, task_mappings(spec), store, executor=executor).run()
    finally:
        opened.close()
        source.close()
    stamps = ds.dataset(str(lake / "main"), format="parquet").to_table(columns=["ts"])
    assert stamps.num_rows == 2000 and len(set(stamps.column("ts").to_pylist())) == 1


def test_escalation_counts_the_rows_of_every_unit_of_a_table(tmp_path: Path) -> None:
    """DataErrorEscalationCount is per table: two bad rows in each of three segments,
    each in its own process, reach a count of 5 together."""
    src = tmp_path / "src.db"
    bad = {5, 6, 305, 306, 805, 806}
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE big (id integer primary key, n smallint)")
        rows = [(i, 100000 if i in bad else i) for i in range(1, 1001)]
        conn.executemany("INSERT INTO big VALUES (?, ?)", rows)
    spec = _spec(f"sqlite:///{src}", f"sqlite:///{tmp_path / 'dst.db'}", "main")
    behavior = {"DataErrorEscalationCount": 5}
    settings = spec.task_settings.model_copy(
        update={"ErrorBehavior": spec.task_settings.ErrorBehavior.model_copy(update=behavior)}
    )
    store = StateStore(tmp_path / "state.db")
    result = _load(spec.model_copy(update={"task_settings": settings}), store)
    (table,) = store.tables("proc")
    assert table.state is TableState.ERROR and table.error_rows >= 5
    assert "rows had data errors (DataErrorEscalationCount 5" in result.failed["main.big"]
