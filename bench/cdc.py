"""CDC benchmark (not a test): opendms against native logical replication, one run.

    .venv/bin/python bench/cdc.py [--rows 500000] [--pgbench-seconds 30] [--jobs pg,s3,mysql]

``pg``: two private PostgreSQL servers (source and target). For each of opendms
(``task run --follow``) and a native publication/subscription it measures:

- one UPDATE of every row of a ``rows``-row table: seconds from COMMIT until the
  target shows every updated row;
- ``pgbench -c4 -T<s>``: seconds behind when the load stops, and time to catch up.

``s3``: PostgreSQL -> a SeaweedFS S3 Parquet lake under the same pgbench load (the
lake task runs with CdcMaxBatchInterval=1, so files roll every second): history rows
behind when the load stops and seconds until the lake holds them all.

``mysql``: MariaDB -> PostgreSQL, one UPDATE of ``--mysql-rows`` rows: seconds from
COMMIT until applied, against ``mysql-replication`` only decoding the same events.

Ratios are anchor time / opendms time (> 1: opendms is faster).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

from opendms.testing.servers import PostgresServer

BIN = Path(sys.executable).parent


def wait_for(server: PostgresServer, db: str, sql: str, want: int, limit: float = 600) -> float:
    """Seconds until ``sql`` (a count) on the target returns ``want``."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        try:
            if server.execute(sql, db=db)[0][0] == want:
                return time.perf_counter() - start
        except psycopg.errors.UndefinedTable:
            pass  # not created yet
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {sql!r} to reach {want}")


def pgbench(src: PostgresServer, *args: str) -> None:
    """Run pgbench against the source database ``src``."""
    conn = ["-h", "127.0.0.1", "-p", str(src.port), "-U", "postgres", "src"]
    subprocess.run([f"{src.bindir}/pgbench", *args, *conn], check=True, capture_output=True)


def setup_source(src: PostgresServer, rows: int) -> None:
    src.create_database("src")
    src.execute(
        "CREATE TABLE big (id int PRIMARY KEY, n int NOT NULL, pad text NOT NULL)", db="src"
    )
    src.execute(
        f"INSERT INTO big SELECT g, 0, repeat('p', 80) FROM generate_series(1, {rows}) g",
        db="src",
    )
    pgbench(src, "-i", "-s", "5", "-q")
    src.execute("VACUUM ANALYZE", db="src")


def start_opendms(src: PostgresServer, dst: PostgresServer, tmp: Path) -> subprocess.Popen[bytes]:
    dst.create_database("ours")
    task = tmp / "cdc.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "name": "bench",
                "source": src.url("src"),
                "target": dst.url("ours"),
                "migration_type": "full-load-and-cdc",
            }
        )
    )
    cmd = [
        str(BIN / "opendms"),
        "--state",
        str(tmp / "s.db"),
        "task",
        "run",
        "--quiet",
        "--follow",
        str(task),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    return proc


def start_native(src: PostgresServer, dst: PostgresServer) -> None:
    dst.create_database("native")
    for table in (
        "big",
        "pgbench_accounts",
        "pgbench_branches",
        "pgbench_tellers",
        "pgbench_history",
    ):
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
    src.execute("CREATE PUBLICATION native FOR ALL TABLES", db="src")
    dst.execute(
        f"CREATE SUBSCRIPTION native CONNECTION 'host=127.0.0.1 port={src.port} user=postgres "
        "dbname=src' PUBLICATION native",
        db="native",
    )


def caught_up_full_load(dst: PostgresServer, db: str, rows: int) -> None:
    wait_for(dst, db, "SELECT count(*) FROM big", rows, limit=900)


def update_all(src: PostgresServer, dst: PostgresServer, rows: int, mark: int) -> dict[str, float]:
    src.execute(f"UPDATE big SET n = {mark}", db="src")
    sql = f"SELECT count(*) FROM big WHERE n = {mark}"
    return {db: wait_for(dst, db, sql, rows) for db in ("native", "ours")}


def pgbench_run(
    src: PostgresServer, dst: PostgresServer, seconds: int
) -> dict[str, tuple[float, float]]:
    pgbench(src, "-c4", "-j2", f"-T{seconds}", "-n")
    want = src.execute("SELECT count(*), coalesce(sum(delta), 0) FROM pgbench_history", db="src")[0]
    out = {}
    for db in ("native", "ours"):
        row = dst.execute("SELECT count(*), coalesce(sum(delta), 0) FROM pgbench_history", db=db)[0]
        behind = want[0] - row[0]
        took = wait_for(dst, db, "SELECT count(*) FROM pgbench_history", want[0])
        out[db] = (float(behind), took)
    return out


def lake_rows(storage: Any, table: str) -> int:
    """Rows in a table's lake files (Parquet footers only; the table is insert-only)."""
    import pyarrow.parquet as pq

    from opendms.testing.lakereplay import lake_files

    loads, changes = lake_files(storage, "public", table)
    total = 0
    for path in loads + changes:
        with storage.fs.open_input_file(path) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def s3_job(seconds: int, tmp: Path) -> None:
    from opendms.testing.lakereplay import open_lake
    from opendms.testing.servers import SeaweedS3Server

    with PostgresServer() as src, SeaweedS3Server() as s3:
        os.environ.update(s3.env())
        s3.create_bucket("bench")
        setup_source(src, 1000)
        lake = s3.url("bench", "lake")
        settings = "DataFormat=parquet;CdcMaxBatchInterval=1;TimestampColumnName=ts"
        proc = start_task(tmp, "lake", src.url("src"), {"url": lake, "settings": settings})
        try:
            storage = open_lake(lake)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and lake_rows(storage, "big") < 1000:
                time.sleep(0.5)
            pgbench(src, "-c4", "-j2", f"-T{seconds}", "-n")
            want = src.execute("SELECT count(*) FROM pgbench_history", db="src")[0][0]
            behind = want - lake_rows(storage, "pgbench_history")
            start = time.perf_counter()
            while lake_rows(storage, "pgbench_history") < want:
                if time.perf_counter() - start > 600:
                    raise SystemExit("the lake did not catch up within 600 s")
                time.sleep(0.2)
            took = time.perf_counter() - start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    print(
        f"pgbench -c4 -T{seconds} -> S3 Parquet lake: {want:,} history rows, {behind:,} behind "
        f"at load stop, all in the lake {took:.2f}s later (CdcMaxBatchInterval=1)"
    )


def start_task(tmp: Path, name: str, source: str, target: Any) -> subprocess.Popen[bytes]:
    task = tmp / f"{name}.yaml"
    spec = {"name": name, "source": source, "target": target}
    task.write_text(yaml.safe_dump({**spec, "migration_type": "full-load-and-cdc"}))
    cmd = [str(BIN / "opendms"), "--state", str(tmp / f"{name}.db"), "task", "run"]
    return subprocess.Popen([*cmd, "--quiet", "--follow", str(task)], stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--pgbench-seconds", type=int, default=30)
    parser.add_argument("--mysql-rows", type=int, default=200_000)
    parser.add_argument("--jobs", default="pg,s3,mysql")
    args = parser.parse_args()
    jobs = set(args.jobs.split(","))
    if "pg" in jobs:
        pg_job(args)
    if "s3" in jobs:
        with tempfile.TemporaryDirectory() as tmpdir:
            s3_job(args.pgbench_seconds, Path(tmpdir))
    if "mysql" in jobs:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from cdc_mysql import mysql_job

        mysql_job(args.mysql_rows)
    print(f"cores: {os.cpu_count()}")


def pg_job(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        PostgresServer() as src,
        PostgresServer() as dst,
    ):
        setup_source(src, args.rows)
        start_native(src, dst)
        proc = start_opendms(src, dst, Path(tmpdir))
        try:
            for db in ("native", "ours"):
                caught_up_full_load(dst, db, args.rows)
            time.sleep(2)
            updates = update_all(src, dst, args.rows, 1)
            bench = pgbench_run(src, dst, args.pgbench_seconds)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
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
