"""Federated query, seed 000's two-store join: ``trips`` (1M rows, 25 columns) in
PostgreSQL and trip ``items`` (100k) in a DynamoDB-compatible server (dynalite, or moto
with ``--server moto``), joined on the ride id for one ride.

    SELECT t.id, t.rider_name, t.fare_amount, i.seq, i.kind, i.amount
    FROM pg.public.trips t JOIN ddb.dynamodb.items i ON i.ride_id = t.id
    WHERE t.id = <a ride with items>

``opendms query`` pushes ``t.id = ...`` to PostgreSQL (one row through the key's index)
and, through the join's equality, ``ride_id = ...`` to DynamoDB (one ``Query``); the
anchor, measured in the same run, is the same query with ``--no-pushdown``: both tables
read whole into DuckDB (what a scan without pushdown costs), answers compared. Goal:
>= 10x. The seed's own figure, Athena over the lake (22.6 s, another machine), is
printed for scale.

    python bench/query.py [--rows 1000000] [--items 100000] [--server dynalite|moto] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support.dynamodb import (
    DynaliteServer,
    MotoDynamoDBServer,
    create_table,
    put_items,
)
from tests.support.servers import PostgresServer

from common import BenchError, report, smoke_option, smoke_sizes
from opendms.query.run import QueryOptions, QueryResult, run_query
from trips import pg_ddl, pg_fill

ATHENA_SECONDS = 22.6
SQL = (
    "SELECT t.id, t.rider_name, t.fare_amount, i.seq, i.kind, i.amount "
    "FROM pg.public.trips t JOIN ddb.dynamodb.items i ON i.ride_id = t.id "
    "WHERE t.id = {ride} ORDER BY i.seq"
)


def ride_of(item: int, rides: int) -> int:
    """The ride item ``item`` belongs to (items spread over the rides)."""
    return (item * 7919) % rides + 1


def fill_items(client: Any, items: int, rides: int) -> None:
    create_table(client, "items", [("ride_id", "N"), ("seq", "N")])
    rows = [
        {
            "ride_id": {"N": str(ride_of(i, rides))},
            "seq": {"N": str(i)},
            "kind": {"S": ("fare", "tip", "toll", "fee")[i % 4]},
            "amount": {"N": f"{(i * 37) % 10000 / 100:.2f}"},
        }
        for i in range(items)
    ]
    put_items(client, "items", rows)


def timed(sql: str, endpoints: dict[str, str], pushdown: bool) -> tuple[float, QueryResult]:
    start = time.perf_counter()
    result = run_query(sql, QueryOptions(endpoints, pushdown=pushdown))
    return time.perf_counter() - start, result


def reads(result: QueryResult) -> str:
    parts = []
    for read in result.reads:
        calls = "".join(f", {n} {op}" for op, n in sorted(read.request.calls.items()))
        took = f"{read.seconds:.3f}s"
        parts.append(f"{read.request.scan.name} {read.rows:,} rows in {took}{calls}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--server", choices=("dynalite", "moto"), default="dynalite")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=2000, items=300)
    for var, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        os.environ[var] = value
    server = DynaliteServer() if args.server == "dynalite" else MotoDynamoDBServer()
    with PostgresServer() as pg, server as ddb:
        pg.create_database("src")
        pg.execute(pg_ddl(), db="src")
        pg.execute(pg_fill(args.rows), db="src")
        pg.execute("VACUUM ANALYZE trips", db="src")
        start = time.perf_counter()
        fill_items(ddb.client(), args.items, args.rows)
        print(f"loaded {args.items:,} items in {time.perf_counter() - start:.1f}s")
        endpoints = {"pg": pg.url("src"), "ddb": ddb.url()}
        ride = ride_of(args.items // 2, args.rows)
        sql = SQL.format(ride=ride)
        timed(sql, endpoints, True)  # warm: imports, connections, DuckDB
        ours, pushed = timed(sql, endpoints, True)
        whole, anchor = timed(sql, endpoints, False)
    if pushed.table.num_rows == 0 or pushed.table.to_pylist() != anchor.table.to_pylist():
        raise BenchError("the answers with and without pushdown differ (or are empty)")
    print(f"answer: {pushed.table.num_rows} rows for ride {ride}")
    print(f"opendms query (pushdown): {ours:.3f}s: {reads(pushed)}")
    print(f"whole tables into DuckDB: {whole:.3f}s: {reads(anchor)}")
    report([("selective join, PG + DynamoDB", whole, ours, "goal >= 10x")])
    print(f"seed 000: Athena over the lake {ATHENA_SECONDS}s (the seed's figure, for scale)")
    print(f"rows: {args.rows:,} trips, {args.items:,} items ({args.server})")


if __name__ == "__main__":
    main()
