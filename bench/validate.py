"""Validation benchmark (not a test): ``opendms validate`` on 1M-row trips.

    .venv/bin/python bench/validate.py [--rows 1000000] [--jobs pg,mysql]
    .venv/bin/python bench/validate.py --smoke     # tiny sizes, seconds (the test suite)

Starts private PostgreSQL and MariaDB servers, builds the 25-column ``trips`` table on
PostgreSQL, full-loads it with opendms into PostgreSQL and into MariaDB, then times,
in the same run:

- a plain full read of both sides through the opendms endpoints (Arrow batches,
  nothing done with them): the floor any row-level validation has to pay;
- ``validate_task`` on the task (clean copy: 0 failures expected);
- ``validate_task`` after damaging 100 target rows (100 failures expected);
- both again with in-database checksum bisection (``checksums=True``).

and prints validation time as a ratio to the plain read (goal <= 1.5x).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support.servers import MariaDBServer, PostgresServer

from common import BenchError, opendms_task, smoke_option, smoke_sizes
from opendms.config import TaskSpec, task_from_dict
from opendms.endpoints import open_source
from opendms.model import ReadPlan, TableRef
from opendms.state import StateStore
from opendms.validate import validate_task
from trips import pg_ddl, pg_fill


def plain_read(url: str, ref: TableRef) -> int:
    """Read every row and column of ``ref`` once; returns the row count."""
    source = open_source(url)
    try:
        table = source.describe(ref)
        plan = ReadPlan(table, tuple(c.name for c in table.columns), batch_rows=65536)
        with source.snapshot() as snap:
            return sum(b.num_rows for b in source.read(plan, snap))
    finally:
        source.close()


def timed_validate(spec: TaskSpec, store: StateStore, expect: int, checksums: bool) -> float:
    start = time.perf_counter()
    result = validate_task(spec, store, checksums=checksums)
    took = time.perf_counter() - start
    found = len(result.failures)
    if found != expect:
        raise BenchError(f"validation found {found} failures, expected {expect}")
    return took


def job(
    name: str, source: str, target: str, target_ref: TableRef, damage: object, tmp: Path
) -> tuple[str, float, list[float]]:
    took, rss = opendms_task(tmp, name, {"source": source, "target": target})
    print(f"{name}: full load {took:.1f}s (peak RSS {rss} MB)")
    spec = task_from_dict({"name": name, "source": source, "target": target}, where="bench")
    store = StateStore(tmp / "state.db")
    start = time.perf_counter()
    rows = plain_read(source, TableRef("public", "trips")) + plain_read(target, target_ref)
    read = time.perf_counter() - start
    print(f"{name}: plain read of both sides {read:.1f}s ({rows:,} rows)")
    times = [timed_validate(spec, store, 0, mode) for mode in (False, True)]
    damage()  # type: ignore[operator]
    times += [timed_validate(spec, store, 100, mode) for mode in (False, True)]
    return name, read, times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", default="pg,mysql", help="comma list: pg,mysql")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=2000)
    jobs = args.jobs.split(",")
    results = []
    with tempfile.TemporaryDirectory() as tmpdir, PostgresServer() as pg, MariaDBServer() as my:
        tmp = Path(tmpdir)
        pg.create_database("src")
        pg.execute(pg_ddl(), db="src")
        pg.execute(pg_fill(args.rows), db="src")
        pg.execute("VACUUM ANALYZE trips", db="src")
        source = pg.url("src")
        step = max(args.rows // 100, 10)  # damages 100 rows
        damage_sql = f"UPDATE trips SET fare_amount = fare_amount + 1 WHERE id % {step} = 7"
        if "pg" in jobs:
            target = pg.create_database("dst")

            def damage_pg() -> None:
                pg.execute(damage_sql, db="dst")

            ref = TableRef("public", "trips")
            results.append(job("pg2pg", source, target, ref, damage_pg, tmp))
        if "mysql" in jobs:
            target = my.create_database("dst")

            def damage_my() -> None:
                my.execute(damage_sql, db="dst")

            ref = TableRef("dst", "trips")
            results.append(job("pg2mysql", source, target, ref, damage_my, tmp))
    heads = ["clean", "clean+cksum", "damaged", "damaged+cksum"]
    print(f"\n{'job':<10}{'read s':>8}" + "".join(f"{h:>16}" for h in heads))
    for name, read, times in results:
        cells = "".join(f"{t:>8.1f}s {t / read:>5.2f}x" for t in times)
        print(f"{name:<10}{read:>7.1f}s{cells}")
    print("ratio = validation time / plain read of both sides (goal <= 1.5x)")
    print(f"rows: {args.rows:,}")


if __name__ == "__main__":
    main()
