"""DynamoDB full load: opendms (parallel BatchWriteItem) against a plain boto3
``batch_writer`` loop, in the same run, on a private DynamoDB-compatible server.

Both write the same rows of a SQLite ``trips`` table (integer key, text, exact decimal,
timestamp, integer) into a fresh on-demand table; each result is checked by counting the
items. The anchor is what a Python user writes by hand: ``Table.batch_writer()`` with
``put_item`` per row (boto3 sends 25-item BatchWriteItem calls, one at a time). opendms
sends its batches from ``ParallelLoadThreads`` writers. Goal: >= 1.5x.

The server matters: dynalite (Node.js, one thread) caps what parallel batches can gain;
moto (threaded) less so. ``--server`` picks one; the figures name it.

    python bench/dynamodb_load.py [--rows 50000] [--server dynalite|moto] [--smoke]
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


def batch_writer_loop(server: Any, source: Path, name: str) -> float:
    """The anchor: boto3's ``batch_writer`` fed row by row from SQLite."""
    import boto3

    resource = boto3.resource(
        "dynamodb",
        endpoint_url=server.endpoint_url,
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
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def opendms_load(server: Any, tmp: Path, source: Path, name: str) -> float:
    spec = {
        "source": f"sqlite:///{source}",
        "target": server.url(),
        "type": "full-load",
        "mappings": {"rules": _rules(name)},
        "settings": {
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


def run(args: argparse.Namespace) -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    kind = DynaliteServer if args.server == "dynalite" else MotoDynamoDBServer
    with tempfile.TemporaryDirectory(prefix="opendms-bench-ddb-") as tmpdir, kind() as server:
        tmp = Path(tmpdir)
        source = tmp / "src.db"
        fill_sqlite(source, args.rows)
        client = server.client()
        anchor_table, our_table = f"anchor_{uuid.uuid4().hex[:8]}", f"ours_{uuid.uuid4().hex[:8]}"
        anchor = batch_writer_loop(server, source, anchor_table)
        ours = opendms_load(server, tmp, source, our_table)
        for table in (anchor_table, our_table):
            found = count_items(client, table)
            if found != args.rows:
                raise BenchError(f"table {table} holds {found} items, expected {args.rows}")
        print(f"rows: {args.rows:,}; server: {args.server}; opendms ParallelLoadThreads {THREADS}")
        print(
            f"items/s: batch_writer {args.rows / anchor:,.0f}, opendms {args.rows / ours:,.0f}"
            " (opendms: the whole task run, process start included)"
        )
        report([(f"DynamoDB full load vs batch_writer ({args.server})", anchor, ours,
                 "goal >= 1.5x")])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--server", choices=("dynalite", "moto"), default="dynalite")
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, rows=500)
    run(args)


if __name__ == "__main__":
    main()
