"""CDC benchmark (not a test): opendms against native logical replication, one run.

    .venv/bin/python bench/cdc.py [--rows 500000] [--pgbench-seconds 30] [--jobs pg,s3,mysql]
    .venv/bin/python bench/cdc.py --smoke     # tiny sizes, seconds (the test suite runs it)

``pg``: two private PostgreSQL servers (source and target). Once both opendms
(``task run --follow``) and a native publication/subscription stream (every table
loaded, then the targets vacuumed and checkpointed), it measures for each:

- one UPDATE of every row of a ``rows``-row table: seconds from COMMIT until the
  target shows the updated rows (both clocks start at the COMMIT);
- ``pgbench -c4 -T<s>``: history rows behind when the load stops, and seconds until
  each target holds them all (both clocks start when the load stops).

``s3``: PostgreSQL -> a SeaweedFS S3 Parquet lake under the same pgbench load (the
lake task runs with CdcMaxBatchInterval=1, so files roll every second): history rows
behind when the load stops and seconds until the lake holds them all.

``mysql``: MariaDB -> PostgreSQL, one UPDATE of ``--mysql-rows`` rows: seconds from
COMMIT until applied, against ``mysql-replication`` only decoding the same events.

For each opendms step it prints the apply paths its batches took (staged COPY+merge
runs, statement runs, changes redone one by one) and, for the UPDATEs, the CDC loop's
line per batch (apply seconds; seconds after the source COMMIT the transaction was
received and applied). A task that fails ends the run at once with its error.

Ratios are anchor time / opendms time (> 1: opendms is faster).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support.servers import PostgresServer

from common import BenchError, TaskRun, describe_paths, smoke_option, smoke_sizes, wait_until

DBS = ("native", "ours")


def count(server: PostgresServer, db: str, sql: str) -> int | None:
    """A count on ``db`` (None while the table is not there yet)."""
    try:
        return int(server.execute(sql, db=db)[0][0])
    except psycopg.errors.UndefinedTable:
        return None


def reach_each(
    dst: PostgresServer, sql: str, want: int, task: TaskRun, limit: float = 900
) -> dict[str, float]:
    """Seconds until ``sql`` returns ``want`` on each of the native and opendms targets,
    both measured from now (polled in turn on open connections; fails at once when the
    task fails)."""
    start, reached = time.perf_counter(), {}
    conns = {db: psycopg.connect(dst.url(db), autocommit=True) for db in DBS}

    def all_there() -> bool:
        for db, conn in conns.items():
            if db not in reached and conn.execute(sql).fetchone() == (want,):
                reached[db] = time.perf_counter() - start
        return len(reached) == len(DBS)

    try:
        wait_until(f"{sql!r} to reach {want} on both targets", all_there, limit, task)
    finally:
        for conn in conns.values():
            conn.close()
    return reached


def pgbench(src: PostgresServer, *args: str) -> None:
    """Run pgbench against the source database ``src``."""
    conn = ["-h", "127.0.0.1", "-p", str(src.port), "-U", "postgres", "src"]
    subprocess.run([f"{src.bindir}/pgbench", *args, *conn], check=True, capture_output=True)


def setup_source(src: PostgresServer, rows: int, scale: int) -> None:
    src.create_database("src")
    src.execute(
        "CREATE TABLE big (id int PRIMARY KEY, n int NOT NULL, pad text NOT NULL)", db="src"
    )
    src.execute(
        f"INSERT INTO big SELECT g, 0, repeat('p', 80) FROM generate_series(1, {rows}) g",
        db="src",
    )
    pgbench(src, "-i", "-s", str(scale), "-q")
    # pgbench_history has no key: as assessment (pg-replica-identity) tells a user, CDC
    # needs one or REPLICA IDENTITY FULL (it only gets inserts here).
    src.execute("ALTER TABLE pgbench_history REPLICA IDENTITY FULL", db="src")
    src.execute("VACUUM ANALYZE", db="src")


def start_opendms(src: PostgresServer, dst: PostgresServer, tmp: Path) -> TaskRun:
    dst.create_database("ours")
    spec = {"source": src.url("src"), "target": dst.url("ours")}
    return TaskRun(tmp, "bench", {**spec, "migration_type": "full-load-and-cdc"})


TABLES = ("big", "pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


def start_native(src: PostgresServer, dst: PostgresServer) -> None:
    dst.create_database("native")
    for table in TABLES:
        ddl = src.execute(
            "SELECT 'CREATE TABLE ' || %s || ' (' || string_agg(attname || ' ' || "
            "format_type(atttypid, atttypmod), ', ' ORDER BY attnum) || ')' FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            db="src",
            params=(table, table),
        )[0][0]
        dst.execute(ddl, db="native")
        pk = src.execute(
            "SELECT string_agg(a.attname, ', ') FROM pg_index i JOIN pg_attribute a ON "
            "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass "
            "AND i.indisprimary",
            db="src",
            params=(table,),
        )[0][0]
        if pk:
            dst.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({pk})", db="native")
    # the bench's tables only: FOR ALL TABLES would also publish opendms's DDL capture
    # tables, which the subscriber lacks
    src.execute(f"CREATE PUBLICATION native FOR TABLE {', '.join(TABLES)}", db="src")
    dst.execute(
        f"CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port={src.port} user=postgres "
        "dbname=src' PUBLICATION native",
        db="native",
    )


def native_ready(dst: PostgresServer) -> bool:
    """Every table of the subscription has finished its initial copy."""
    states = dst.execute("SELECT srsubstate FROM pg_subscription_rel", db="native")
    return len(states) == len(TABLES) and all(s[0] == "r" for s in states)


def both_streaming(dst: PostgresServer, task: TaskRun) -> None:
    """Both targets loaded and streaming, then vacuumed and checkpointed, so no step pays
    for the load (autovacuum of fresh tables, dirty buffers)."""
    wait_until("opendms to stream (ongoing replication)", task.streaming, 900, task, every=0.2)
    wait_until("the native subscription's tables", lambda: native_ready(dst), 900, task)
    wait_until("opendms's apply metrics", task.paths, 30, task)
    for db in DBS:
        dst.execute("VACUUM ANALYZE", db=db)
    dst.execute("CHECKPOINT")


def update_all(
    src: PostgresServer, dst: PostgresServer, task: TaskRun, rows: int, mark: int
) -> dict[str, float]:
    """One UPDATE of every row of ``big``: seconds from its COMMIT until each target has
    it. Each side applies it as one transaction: a probe of one row by key tells (a
    count of every row per poll would steal the two cores from the apply)."""
    before, since, servers = task.paths(), task.log_size(), server_counters(src, dst)
    src.execute(f"UPDATE big SET n = {mark}", db="src")
    took = reach_each(dst, f"SELECT count(*) FROM big WHERE id = {rows} AND n = {mark}", 1, task)
    for db in DBS:
        done = count(dst, db, f"SELECT count(*) FROM big WHERE n = {mark}")
        if done != rows:
            raise BenchError(f"{db}: {done} of {rows} rows updated once the probe row was")
    print(f"opendms, {rows:,}-row UPDATE: {describe_paths(task.paths_after(before))}")
    for line in task.applied_lines(since):
        print(f"  {line}")
    print(f"  servers during the UPDATE: {server_changes(servers, server_counters(src, dst))}")
    return took


def server_counters(src: PostgresServer, dst: PostgresServer) -> dict[str, float]:
    """Source slots' spilled MB (the walsender's reorder buffer written to disk), target
    checkpoints and autovacuum workers running (things that can slow one run down)."""
    out = {
        f"{name} slot spilled MB": float(mb)
        for name, mb in src.execute(
            "SELECT slot_name, spill_bytes / 1048576.0 FROM pg_stat_replication_slots", db="src"
        )
    }
    row = dst.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
    out["target checkpoints"] = float(row[0][0])
    workers = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
    out["target autovacuum workers"] = float(dst.execute(workers)[0][0])
    return out


def server_changes(before: dict[str, float], after: dict[str, float]) -> str:
    vacuum = "target autovacuum workers"
    moved = {k: v - before.get(k, 0.0) for k, v in after.items() if k != vacuum}
    text = ", ".join(f"{k} +{v:.0f}" for k, v in moved.items())
    return f"{text}; {vacuum} at start/end {before[vacuum]:.0f}/{after[vacuum]:.0f}"


def pgbench_run(
    src: PostgresServer, dst: PostgresServer, task: TaskRun, seconds: int
) -> dict[str, tuple[float, float]]:
    """pgbench for ``seconds``; per target: history rows behind when it stops, and
    seconds from then until the target has them all."""
    before = task.paths()
    pgbench(src, "-c4", "-j2", f"-T{seconds}", "-n")
    sql = "SELECT count(*) FROM pgbench_history"
    want = count(src, "src", sql) or 0
    behind = {db: want - (count(dst, db, sql) or 0) for db in DBS}
    took = reach_each(dst, sql, want, task)
    print(f"opendms, pgbench: {describe_paths(task.paths_after(before))}")
    return {db: (float(behind[db]), took[db]) for db in DBS}


def lake_rows(storage: Any, table: str) -> int:
    """Rows in a table's lake files (Parquet footers only; the table is insert-only)."""
    import pyarrow.parquet as pq

    from opendms.endpoints.lake.replay import lake_files

    loads, changes = lake_files(storage, "public", table)
    total = 0
    for path in loads + changes:
        with storage.fs.open_input_file(path) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def s3_job(seconds: int, scale: int, tmp: Path) -> None:
    from tests.support.servers import SeaweedS3Server

    from opendms.endpoints.lake.replay import open_lake

    with PostgresServer() as src, SeaweedS3Server() as s3:
        os.environ.update(s3.env())
        s3.create_bucket("bench")
        setup_source(src, 1000, scale)
        lake = s3.url("bench", "lake")
        settings = "DataFormat=parquet;CdcMaxBatchInterval=1;TimestampColumnName=ts"
        spec = {"source": src.url("src"), "target": {"url": lake, "settings": settings}}
        with TaskRun(tmp, "lake", {**spec, "migration_type": "full-load-and-cdc"}) as task:
            storage = open_lake(lake)
            wait_until("the lake to stream", task.streaming, 300, task, every=0.2)
            pgbench(src, "-c4", "-j2", f"-T{seconds}", "-n")
            want = src.execute("SELECT count(*) FROM pgbench_history", db="src")[0][0]
            behind = want - lake_rows(storage, "pgbench_history")
            took = wait_until(
                "the lake to hold every history row",
                lambda: lake_rows(storage, "pgbench_history") >= want,
                600,
                task,
                every=0.2,
            )
    print(
        f"pgbench -c4 -T{seconds} -> S3 Parquet lake: {want:,} history rows, {behind:,} behind "
        f"at load stop, all in the lake {took:.2f}s later (CdcMaxBatchInterval=1)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--pgbench-seconds", type=int, default=30)
    parser.add_argument("--pgbench-scale", type=int, default=5)
    parser.add_argument("--mysql-rows", type=int, default=200_000)
    parser.add_argument("--jobs", default="pg,s3,mysql")
    smoke_option(parser)
    args = parser.parse_args()
    # smoke: the UPDATEs still exceed STAGE_MIN (2000), so the staged path runs
    smoke_sizes(args, rows=3000, pgbench_seconds=1, pgbench_scale=1, mysql_rows=3000)
    jobs = set(args.jobs.split(","))
    if "pg" in jobs:
        pg_job(args)
    if "s3" in jobs:
        with tempfile.TemporaryDirectory() as tmpdir:
            s3_job(args.pgbench_seconds, args.pgbench_scale, Path(tmpdir))
    if "mysql" in jobs:
        from cdc_mysql import mysql_job

        mysql_job(args.mysql_rows)
    print(f"cores: {os.cpu_count()}")


def pg_job(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        PostgresServer() as src,
        PostgresServer() as dst,
    ):
        setup_source(src, args.rows, args.pgbench_scale)
        start_native(src, dst)
        with start_opendms(src, dst, Path(tmpdir)) as task:
            both_streaming(dst, task)
            updates = update_all(src, dst, task, args.rows, 1)
            bench = pgbench_run(src, dst, task, args.pgbench_seconds)
    print(
        f"\n{args.rows:,}-row UPDATE, commit -> all applied: native {updates['native']:.2f}s, "
        f"opendms {updates['ours']:.2f}s, ratio {updates['native'] / updates['ours']:.2f}x "
        "(goal: opendms within 1.5x of native, i.e. ratio >= 0.67)"
    )
    for db, (behind, took) in bench.items():
        print(
            f"pgbench -c4 -T{args.pgbench_seconds}: {db}: {behind:.0f} history rows behind at "
            f"load stop, caught up {took:.2f}s later (goal for opendms: <= 2 s)"
        )


if __name__ == "__main__":
    main()
