"""DynamoDB full load: opendms (parallel BatchWriteItem) against a plain boto3
``batch_writer`` loop, in the same run, on a private DynamoDB-compatible server.

Both write the same rows of a SQLite ``trips`` table (integer key, text, exact decimal,
timestamp, integer) into a fresh on-demand table; each result is checked by counting the
items. The anchor is what a Python user writes by hand: ``Table.batch_writer()`` with
``put_item`` per row (boto3 sends 25-item BatchWriteItem calls, one at a time). opendms
sends its batches from ``ParallelLoadThreads`` writers. Goal: >= 1.5x.

The server matters: dynalite (Node.js, one thread) on the loopback answers a call in well
under a millisecond and its one thread is the bottleneck, so parallel calls gain nothing
there. DynamoDB is a network service: a call from the same AWS region takes a few
milliseconds, which a loop of one call at a time waits for and parallel calls overlap.
So the benchmark runs twice: on the loopback, and through a proxy that delays every
byte each way (``--rtt-ms``, a 4 ms round trip by default; ``tests.support.latency``, a
child process). ``--server`` picks dynalite or moto; the figures name both.

    python bench/dynamodb_load.py [--rows 50000] [--server dynalite|moto] [--rtt-ms 4] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.support.dynamodb import DynaliteServer, MotoDynamoDBServer
from tests.support.latency import DelayProxy

from common import BenchError, opendms_task, report, smoke_option, smoke_sizes

THREADS = 8


def fill_sqlite(path: Path, rows: int) -> None:
    """``trips``: ``rows`` rows of a taxi-trip shape."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE trips (id INTEGER PRIMARY KEY, rider TEXT NOT NULL, fare NUMERIC(10,2),"
        " pickup TIMESTAMP, passengers INTEGER)"
    )
    db.executemany(
        "INSERT INTO trips VALUES (?, ?, ?, ?, ?)",
        (_trip(i) for i in range(1, rows + 1)),
    )
    db.commit()
    db.close()


def _trip(i: int) -> tuple[int, str, str, str, int]:
    pickup = f"2024-01-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:00"
    return (i, f"rider-{i % 977}", f"{(i * 37) % 10000 / 100:.2f}", pickup, 1 + i % 4)


def create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2})


def batch_writer_loop(endpoint: str, source: Path, name: str) -> float:
    """The anchor: boto3's ``batch_writer`` fed row by row from SQLite."""
    import boto3

    resource = boto3.session.Session().resource(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    create_table(resource.meta.client, name)
    db = sqlite3.connect(source)
    start = time.perf_counter()
    with resource.Table(name).batch_writer() as batch:
        for row in db.execute("SELECT id, rider, fare, pickup, passengers FROM trips"):
            batch.put_item(
                Item={
                    "id": row[0],
                    "rider": row[1],
                    "fare": Decimal(str(row[2])),
                    "pickup": row[3],
                    "passengers": row[4],
                }
            )
    took = time.perf_counter() - start
    db.close()
    return took


def count_items(client: Any, name: str) -> int:
    total, kwargs = 0, {"TableName": name, "Select": "COUNT"}
    while True:
        page = client.scan(**kwargs)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def opendms_load(endpoint: str, tmp: Path, source: Path, name: str) -> float:
    spec = {
        "source": f"sqlite:///{source}",
        "target": f"dynamodb://?region=us-east-1&endpoint_url={endpoint}",
        "table_mappings": {"rules": _rules(name)},
        "task_settings": {
            "TargetMetadata": {"ParallelLoadThreads": THREADS},
            "FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"},
        },
    }
    took, _ = opendms_task(tmp, f"ddb-{name}", spec)
    return took


def _rules(name: str) -> list[dict[str, Any]]:
    trips = {"schema-name": "%", "table-name": "trips"}
    return [
        {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
         "object-locator": trips, "rule-action": "include"},
        {"rule-type": "transformation", "rule-id": "2", "rule-name": "2", "rule-target": "table",
         "object-locator": trips, "rule-action": "rename", "value": name},
    ]  # fmt: skip


def measure(args: argparse.Namespace, tmp: Path, source: Path, rtt: float) -> tuple[float, float]:
    """(batch_writer seconds, opendms seconds) against a fresh server, ``rtt`` ms away."""
    kind = DynaliteServer if args.server == "dynalite" else MotoDynamoDBServer
    with kind() as server:
        client = server.client()
        anchor_table, our_table = f"anchor_{uuid.uuid4().hex[:8]}", f"ours_{uuid.uuid4().hex[:8]}"
        if rtt:
            with DelayProxy("127.0.0.1", server.port, rtt / 2000) as proxy:
                endpoint = f"http://127.0.0.1:{proxy.port}"
                anchor = batch_writer_loop(endpoint, source, anchor_table)
                ours = opendms_load(endpoint, tmp, source, our_table)
        else:
            anchor = batch_writer_loop(server.endpoint_url, source, anchor_table)
            ours = opendms_load(server.endpoint_url, tmp, source, our_table)
        for table in (anchor_table, our_table):
            found = count_items(client, table)
            if found != args.rows:
                raise BenchError(f"table {table} holds {found} items, expected {args.rows}")
    where = f"{rtt:g} ms RTT" if rtt else "loopback"
    print(
        f"{args.server}, {where}: items/s: batch_writer {args.rows / anchor:,.0f}, "
        f"opendms {args.rows / ours:,.0f} (opendms: the whole task run, process start included)"
    )
    return anchor, ours


def run(args: argparse.Namespace) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    with tempfile.TemporaryDirectory(prefix="opendms-bench-ddb-") as tmpdir:
        tmp = Path(tmpdir)
        source = tmp / "src.db"
        fill_sqlite(source, args.rows)
        print(f"rows: {args.rows:,}; server: {args.server}; opendms ParallelLoadThreads {THREADS}")
        results = []
        anchor, ours = measure(args, tmp, source, 0)
        results.append(("DynamoDB load vs batch_writer, loopback", anchor, ours, ""))
        if args.rtt_ms:
            anchor, ours = measure(args, tmp, source, args.rtt_ms)
            job = f"DynamoDB load vs batch_writer, {args.rtt_ms:g} ms RTT"
            results.append((job, anchor, ours, "goal >= 1.5x"))
        report(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--server", choices=("dynalite", "moto"), default="dynalite")
    parser.add_argument("--rtt-ms", type=float, default=4.0, help="0: loopback only")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=500)
    run(args)


if __name__ == "__main__":
    main()
