"""Full-load benchmark (not a test): opendms against the anchors, measured in one run.

    .venv/bin/python bench/full_load.py [--rows 1000000]
    .venv/bin/python bench/full_load.py --smoke     # tiny sizes, seconds (the test suite)

Starts private PostgreSQL and MariaDB servers, builds the 25-column ``trips``
table on both, then times, side by side:

- PG -> PG:      ``psql COPY TO STDOUT | psql COPY FROM STDIN`` (binary and text) vs opendms
- MySQL -> PG:   pgloader vs opendms
- PG -> Parquet: one-stream ADBC read + pyarrow ParquetWriter vs opendms (local lake)
- pgcopy:        opendms PG -> PG raw COPY pass-through with asyncpg vs with psycopg 3
                 (``$OPENDMS_PG_COPY_DRIVER``), each run printed; > 1 means psycopg is faster

and prints each as a speed ratio (anchor seconds / opendms seconds; > 1 means
opendms is faster) plus opendms's peak RSS. An anchor whose tool is missing is skipped
with a note (pgloader is installed with apt-get when running as root, except in
``--smoke``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow.parquet as pq
from tests.support.servers import MariaDBServer, PostgresServer

from common import (
    BenchError,
    ensure_debian,
    opendms_task,
    report,
    run_timed,
    smoke_option,
    smoke_sizes,
)
from opendms.endpoints.postgres.fastcopy import DRIVER_ENV, DRIVERS
from trips import mysql_ddl, mysql_fill, pg_ddl, pg_fill


def build_pg(pg: PostgresServer, rows: int) -> None:
    pg.create_database("src")
    pg.execute(pg_ddl(), db="src")
    t = time.perf_counter()
    pg.execute(pg_fill(rows), db="src")
    pg.execute("VACUUM ANALYZE trips", db="src")
    size = pg.execute("SELECT pg_size_pretty(pg_total_relation_size('trips'))", db="src")[0][0]
    print(f"built PostgreSQL trips: {rows:,} rows, {size} in {time.perf_counter() - t:.1f}s")


def build_mysql(my: MariaDBServer, rows: int) -> None:
    my.create_database("src")
    my.execute(mysql_ddl(), db="src")
    t = time.perf_counter()
    my.execute(mysql_fill(rows), db="src")
    my.execute("ANALYZE TABLE trips", db="src")
    print(f"built MariaDB trips: {rows:,} rows in {time.perf_counter() - t:.1f}s")
    if rows >= 100_000:
        time.sleep(5)  # let InnoDB's background flushing of the fill settle before timing


def fresh_pg(pg: PostgresServer, name: str, with_table: bool) -> str:
    """An empty target database; a CHECKPOINT first so no job pays for an earlier one's WAL."""
    pg.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    url = pg.create_database(name)
    if with_table:
        pg.execute(pg_ddl(), db=name)
    pg.execute("CHECKPOINT")
    return url


def psql_pipe(pg: PostgresServer, fmt: str) -> float:
    fresh_pg(pg, "anchor", True)
    psql = f"{pg.bindir}/psql -h 127.0.0.1 -p {pg.port} -U postgres -q"
    opt = "(FORMAT binary)" if fmt == "binary" else ""
    cmd = (
        f"{psql} -d src -c 'COPY trips TO STDOUT {opt}' | "
        f"{psql} -d anchor -c 'COPY trips FROM STDIN {opt}'"
    )
    return run_timed(["bash", "-o", "pipefail", "-c", cmd])[0]


def pgloader(pg: PostgresServer, my: MariaDBServer, install: bool) -> float:
    exe = ensure_debian("pgloader", "pgloader", install)
    if exe is None:
        print("pgloader is not installed: skipping its anchor")
        return float("nan")
    target = fresh_pg(pg, "anchor", False)
    source = f"mysql://root@127.0.0.1:{my.port}/src"
    # pgloader's default prefetch exhausts its Lisp heap on 1M wide rows.
    opts = ["--with", "prefetch rows = 10000", "--with", "batch rows = 10000"]
    try:
        return run_timed([exe, "--quiet", *opts, source, target])[0]
    except BenchError as exc:
        print(f"pgloader failed: {exc}")
        return float("nan")


def adbc_parquet(pg: PostgresServer, out: Path) -> float:
    import adbc_driver_postgresql.dbapi as dbapi

    start = time.perf_counter()
    with dbapi.connect(pg.url("src")) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM trips")
        reader = cur.fetch_record_batch()
        with pq.ParquetWriter(out, reader.schema, compression="snappy") as writer:
            for batch in reader:
                writer.write_batch(batch)
    return time.perf_counter() - start


Result = tuple[str, float, float, str]


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def pg_to_pg(
    pg: PostgresServer, tmp: Path, rss: dict[str, int], rows: int, repeat: int
) -> list[Result]:
    binary: list[float] = []
    text: list[float] = []
    times: list[float] = []
    for _ in range(repeat):  # interleaved, so drift in the machine hits all three alike
        binary.append(psql_pipe(pg, "binary"))
        target = fresh_pg(pg, "ours", False)
        spec = {"source": pg.url("src"), "target": target}
        took, rss["pg->pg"] = opendms_task(tmp, "pg2pg", spec)
        times.append(took)
        text.append(psql_pipe(pg, "text"))
    loaded = pg.execute("SELECT count(*) FROM public.trips", db="ours")[0][0]
    if loaded != rows:
        raise BenchError(f"PG -> PG: the target holds {loaded} rows, expected {rows}")
    ours = median(times)
    return [
        ("PG -> PG vs psql COPY|COPY binary", median(binary), ours, ""),
        ("PG -> PG vs psql COPY|COPY text", median(text), ours, "goal >= 1.0x"),
    ]


def pg_copy_drivers(
    pg: PostgresServer, tmp: Path, rss: dict[str, int], rows: int, repeat: int
) -> list[Result]:
    """opendms's raw PG -> PG pass-through carried by each driver, interleaved (the first
    driver alternates, so neither always runs on a machine the other just warmed)."""
    times: dict[str, list[float]] = {name: [] for name in DRIVERS}
    cpu: dict[str, list[float]] = {name: [] for name in DRIVERS}  # opendms's user + sys
    for run in range(repeat):
        order = DRIVERS if run % 2 == 0 else DRIVERS[::-1]
        for name in order:
            target = fresh_pg(pg, "ours", False)
            spec = {"source": pg.url("src"), "target": target}
            os.environ[DRIVER_ENV] = name
            before = _children_cpu()
            try:
                took, rss[f"pg->pg {name}"] = opendms_task(tmp, f"pg2pg-{name}", spec)
            finally:
                del os.environ[DRIVER_ENV]
            cpu[name].append(_children_cpu() - before)
            loaded = pg.execute("SELECT count(*) FROM public.trips", db="ours")[0][0]
            if loaded != rows:
                raise BenchError(f"PG -> PG ({name}): the target holds {loaded} rows, not {rows}")
            times[name].append(took)
        print(
            f"raw PG -> PG run {run + 1}: "
            + ", ".join(f"{n} {times[n][-1]:.2f}s (CPU {cpu[n][-1]:.2f}s)" for n in DRIVERS)
        )
    print(
        "raw PG -> PG medians: "
        + ", ".join(f"{n} {median(times[n]):.2f}s (CPU {median(cpu[n]):.2f}s)" for n in DRIVERS)
    )
    anchor, ours = median(times["asyncpg"]), median(times["psycopg"])
    return [("PG -> PG raw: asyncpg vs psycopg", anchor, ours, "> 1: psycopg faster")]


def _children_cpu() -> float:
    """User + system CPU seconds of the children waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def mysql_to_pg(
    pg: PostgresServer,
    my: MariaDBServer,
    tmp: Path,
    rss: dict[str, int],
    args: argparse.Namespace,
) -> list[Result]:
    source = f"mysql://root@127.0.0.1:{my.port}/src"
    anchors, times = [], []
    for _ in range(args.repeat):
        anchors.append(pgloader(pg, my, install=not args.smoke))
        target = fresh_pg(pg, "ours", False)
        took, rss["mysql->pg"] = opendms_task(tmp, "my2pg", {"source": source, "target": target})
        times.append(took)
    loaded = pg.execute("SELECT count(*) FROM src.trips", db="ours")[0][0]
    if loaded != args.rows:
        raise BenchError(f"MySQL -> PG: the target holds {loaded} rows, expected {args.rows}")
    anchor, ours = median(anchors), median(times)
    return [("MySQL -> PG vs pgloader", anchor, ours, "goal >= 2.0x")]


def pg_to_parquet(
    pg: PostgresServer, tmp: Path, rss: dict[str, int], rows: int, repeat: int
) -> list[Result]:
    lake = {"url": f"file://{tmp}/lake", "settings": "DataFormat=parquet;ParquetCompression=snappy"}
    anchors, times = [], []
    for _ in range(repeat):
        anchors.append(adbc_parquet(pg, tmp / "anchor.parquet"))
        spec = {"source": pg.url("src"), "target": lake}
        took, rss["pg->parquet"] = opendms_task(tmp, "pg2pq", spec)
        times.append(took)
    anchor, ours = median(anchors), median(times)
    out = sum(
        pq.ParquetFile(f).metadata.num_rows for f in (tmp / "lake/public/trips").glob("*.parquet")
    )
    if out != rows:
        raise BenchError(f"PG -> Parquet: the lake holds {out} rows, expected {rows}")
    return [("PG -> Parquet vs ADBC+pyarrow", anchor, ours, "goal >= 0.91x (within 10%)")]


def main() -> None:
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "src"), quiet=1)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--jobs", default="pg,pgcopy,mysql,parquet", help="comma list: pg,pgcopy,mysql,parquet"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per job; medians are reported")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=2000, repeat=1)
    results: list[Result] = []
    rss: dict[str, int] = {}
    pg_settings = {"max_wal_size": "8GB", "checkpoint_timeout": "30min"}
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        PostgresServer(settings=pg_settings) as pg,
        MariaDBServer() as my,
    ):
        tmp = Path(tmpdir)
        build_pg(pg, args.rows)
        jobs = args.jobs.split(",")
        if "pg" in jobs:
            results += pg_to_pg(pg, tmp, rss, args.rows, args.repeat)
        if "pgcopy" in jobs:
            results += pg_copy_drivers(pg, tmp, rss, args.rows, args.repeat)
        if "parquet" in jobs:
            results += pg_to_parquet(pg, tmp, rss, args.rows, args.repeat)
        if "mysql" in jobs:
            build_mysql(my, args.rows)
            results += mysql_to_pg(pg, my, tmp, rss, args)
    report(results)
    print(
        "\nopendms peak RSS (MB): "
        + ", ".join(f"{k} {v}" for k, v in rss.items())
        + "  (goal < 500)"
    )
    print(f"rows: {args.rows:,}; cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
