"""Which path a PostgreSQL apply took is counted and shown: staged COPY + merge runs,
pipelined statement runs and changes redone one by one (task metrics ``apply_*`` and the
CDC loop's INFO line per batch), so a benchmark can tell a fast run from a fallback."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from opendms.config import TaskSpec, task_from_dict
from opendms.endpoints.postgres.stage import STAGE_MIN
from opendms.service.run import run_task
from opendms.state import StateStore

SETUP = """
CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL, note text);
INSERT INTO items SELECT g, 0, 'x' FROM generate_series(1, {rows}) g;
"""


def _spec(source: str, target: str) -> TaskSpec:
    return task_from_dict(
        {
            "name": "paths",
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "task_settings": {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}},
        },
        where="test",
    )


def _source(url: str, rows: int) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SETUP.format(rows=rows))
    return url


def _write(url: str, *sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for stmt in sql:
            conn.execute(stmt)


def _metrics(store: StateStore) -> dict[str, float]:
    record = store.task("paths")
    assert record is not None
    return record.metrics


def test_staged_and_statement_runs_are_counted(
    pg_db: str, pg_target_db: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One UPDATE of every row is one staged run; single-row changes are statements; the
    INFO line of the batch names the path."""
    rows = STAGE_MIN + 500
    source = _source(pg_db, rows)
    store = StateStore(tmp_path / "state.db")
    run_task(_spec(source, pg_target_db), store)  # full load, then caught up
    _write(source, "UPDATE items SET n = 1", "UPDATE items SET n = 2 WHERE id = 7")
    with caplog.at_level(logging.INFO, logger="opendms.cdc"):
        run_task(_spec(source, pg_target_db), store)
    with psycopg.connect(pg_target_db) as conn:
        got = conn.execute("SELECT n, count(*) FROM items GROUP BY n ORDER BY n").fetchall()
    assert got == [(1, rows - 1), (2, 1)]
    m = _metrics(store)
    assert (m["apply_staged_runs"], m["apply_staged_rows"]) == (1, rows)
    assert (m["apply_statement_runs"], m["apply_statement_rows"]) == (1, 1)
    assert m["apply_one_by_one"] == 0 and m["apply_redone"] == 0
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("applied")]
    assert any(f"staged_runs=1 staged_rows={rows}" in line for line in lines), lines
    assert all("after commit" in line for line in lines), lines


def test_a_conflict_counts_the_batch_redone_one_by_one(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """A batch the target refuses on a conflict is redone change by change: counted."""
    source = _source(pg_db, 10)
    store = StateStore(tmp_path / "state.db")
    run_task(_spec(source, pg_target_db), store)
    _write(pg_target_db, "INSERT INTO items VALUES (11, 5, 'already here')")
    _write(source, "INSERT INTO items VALUES (11, 0, 'new'), (12, 0, 'new')")
    run_task(_spec(source, pg_target_db), store)
    with psycopg.connect(pg_target_db) as conn:
        got = conn.execute("SELECT id, note FROM items WHERE id > 10 ORDER BY id").fetchall()
    assert got == [(11, "already here"), (12, "new")]  # ApplyErrorInsertPolicy LOG_ERROR
    m = _metrics(store)
    assert m["apply_redone"] == 1 and m["apply_one_by_one"] == 2
    assert m["apply_staged_runs"] == 0 and m["apply_statement_rows"] == 0


def test_a_quiet_postgres_stream_reports_idle_at_once(pg_db: str) -> None:
    """Once the last transaction of a burst is delivered, the stream's idle tick (which
    lets the CDC loop apply what it holds) comes at once, not after IDLE_WAIT of silence:
    that wait was added to every small batch's commit -> applied time."""
    import threading
    import time

    from opendms.changes import Op
    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.postgres.changesource import IDLE_WAIT, PgChangeSource
    from opendms.model import TableRef

    _source(pg_db, 10)
    capture = PgChangeSource(EndpointURL.parse(pg_db), "idle")
    capture.prepare([TableRef("public", "items")])
    start, _ = capture.start()
    capture.release_snapshot()
    stop = threading.Event()
    stream = capture.stream(start, stop)
    try:
        while capture.caught_up() is False:
            next(stream)
        waits = []
        for n in range(1, 9):  # the server's keepalive sometimes ended the wait early
            _write(pg_db, f"UPDATE items SET n = {n} WHERE id = 1")
            while (txn := next(stream)) is None:
                pass
            assert [c.values[1] for c in txn.changes if c.op is Op.UPDATE] == [str(n)]
            began = time.monotonic()
            assert next(stream) is None
            waits.append(time.monotonic() - began)
        assert max(waits) < IDLE_WAIT / 2, waits
    finally:
        stop.set()
        stream.close()
        capture.drop()
        capture.close()


def test_a_quiet_mysql_stream_reports_idle_at_once(mysql_db: str) -> None:
    """The same for the binlog stream of a MySQL/MariaDB source."""
    import threading
    import time

    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.mysql.changesource import IDLE_WAIT, MySqlChangeSource
    from opendms.model import TableRef
    from tests.support.sql import connect, query

    conn = connect(mysql_db)
    query(conn, "CREATE TABLE items (id int PRIMARY KEY, n int NOT NULL)")
    query(conn, "INSERT INTO items VALUES (1, 0)")
    url = EndpointURL.parse(mysql_db)
    capture = MySqlChangeSource(url, "idle")
    capture.prepare([TableRef(url.database, "items")])
    start, _ = capture.start()
    stop = threading.Event()
    stream = capture.stream(start, stop)
    try:
        waits = []
        for n in range(1, 9):
            query(conn, f"UPDATE items SET n = {n} WHERE id = 1")
            while (txn := next(stream)) is None:
                pass
            assert [c.values[1] for c in txn.changes] == [n]
            began = time.monotonic()
            assert next(stream) is None
            waits.append(time.monotonic() - began)
        assert max(waits) < IDLE_WAIT / 2, waits
    finally:
        stop.set()
        stream.close()
        capture.close()
        conn.close()
