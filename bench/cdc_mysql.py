"""MySQL/MariaDB -> PostgreSQL CDC benchmark job (run by bench/cdc.py --jobs mysql).

Fills a ``trips`` table on a private MariaDB, runs an opendms ``full-load-and-cdc``
task into a private PostgreSQL (``task run --follow``), and once it streams (the target
then vacuumed and checkpointed), UPDATEs every row: seconds from COMMIT until
PostgreSQL shows every updated row, with the apply paths the batches took. The anchor
is ``mysql-replication`` only decoding the same binlog events (no apply at all).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from tests.support.servers import MariaDBServer, PostgresServer

from binlog_decode import _execute, decode_with_mysql_replication, position
from common import BenchError, TaskRun, describe_paths, wait_until
from trips import mysql_ddl, mysql_fill

PROBE = "SELECT count(*) FROM src.trips WHERE id = 1 AND status = 'Updated'"


def mysql_job(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmpdir, MariaDBServer() as my, PostgresServer() as pg:
        url = my.create_database("src")
        _execute(url, "DROP TABLE IF EXISTS trips", mysql_ddl(), mysql_fill(rows))
        pg.create_database("dst")
        spec = {"source": url, "target": pg.url("dst"), "migration_type": "full-load-and-cdc"}
        with TaskRun(Path(tmpdir), "mybench", spec) as task:
            wait_until("opendms to stream (ongoing replication)", task.streaming, 900, task)
            wait_until("opendms's apply metrics", task.paths, 30, task)
            pg.execute("VACUUM ANALYZE", db="dst")
            pg.execute("CHECKPOINT")
            before, since = task.paths(), task.log_size()
            start = position(url)
            _execute(url, "UPDATE trips SET fare_amount = fare_amount + 1, status = 'Updated'")
            end = position(url)
            applied = _applied(pg, task)
            paths = task.paths_after(before)
            lines = task.applied_lines(since)
        decoded, decode_s = decode_with_mysql_replication(url, start, end)
    print(f"opendms, MySQL {rows:,}-row UPDATE: {describe_paths(paths)}")
    for line in lines:
        print(f"  {line}")
    print(
        f"MySQL -> PostgreSQL, {rows:,}-row UPDATE: opendms commit -> all applied {applied:.2f}s;"
        f" mysql-replication decode only {decode_s:.2f}s ({decoded:,} rows); "
        f"ratio {decode_s / applied:.2f}x (goal >= 5x)"
    )


def _applied(pg: PostgresServer, task: TaskRun) -> float:
    """Seconds until the UPDATE is on the target. It is one transaction, applied as one:
    a probe of one row by key tells (cheap, so polling does not steal the 2 cores); then
    every row is checked."""
    with psycopg.connect(pg.url("dst"), autocommit=True) as conn:
        took = wait_until("the UPDATE on PostgreSQL", lambda: _one(conn), 900, task)
        total = conn.execute("SELECT count(*) FROM src.trips").fetchone()
        done = conn.execute("SELECT count(*) FROM src.trips WHERE status = 'Updated'").fetchone()
    if done != total:
        raise BenchError(f"only {done} of {total} rows were updated")
    return took


def _one(conn: psycopg.Connection[tuple[int]]) -> bool:
    row = conn.execute(PROBE).fetchone()
    return row is not None and row[0] == 1
