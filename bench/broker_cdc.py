"""Broker-target benchmark (not a test): CDC change records per second into NATS
JetStream and Redis Streams.

    .venv/bin/python bench/broker_cdc.py [--records 200000] [--batch 5000]
    .venv/bin/python bench/broker_cdc.py --smoke     # tiny sizes, seconds (the test suite)

Starts a private ``nats-server -js`` and ``redis-server``, and feeds ``--records``
synthetic row changes (inserts and updates of a five-column table, 10 changes a
transaction) through each engine's CDC applier in batches of ``--batch`` changes, as a
CDC task applies them (records made, published or XADDed, acks awaited, checkpoint
written). The anchor is the client library alone sending bodies of the same size (nats-py
``publish_async`` with the same ack window; a redis-py MULTI/EXEC of XADDs), so the
ratio says what opendms adds. It then checks the stream holds every record once. The
goal is at least 20,000 records/s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.brokers import NatsServer, RedisServer

from common import BenchError, smoke_option, smoke_sizes
from opendms.changes import Applier, ApplyPlan, Change, Op, SeqPosition, Transaction
from opendms.endpoints import open_applier, open_target
from opendms.endpoints.engine import ApplyOptions
from opendms.model import Column, ColumnType, Kind, Table

TABLE = Table(
    "public",
    "orders",
    (
        Column("id", ColumnType(Kind.INT64), nullable=False),
        Column("customer", ColumnType(Kind.STRING)),
        Column("qty", ColumnType(Kind.INT32)),
        Column("price", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
        Column("placed", ColumnType(Kind.TIMESTAMP)),
    ),
    primary_key=("id",),
)
NAMES = tuple(c.name for c in TABLE.columns)
PER_TXN = 10


def change(i: int) -> Change:
    values = (i // 2, f"customer {i % 977}", i % 100, Decimal(i % 100_000).scaleb(-2),
              dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i))  # fmt: skip
    if i % 2 == 0:
        return Change(Op.INSERT, "public", "orders", NAMES, values)
    return Change(Op.UPDATE, "public", "orders", NAMES, values, ("id",), (i // 2,))


def batches(records: int, size: int) -> list[tuple[list[Transaction], str]]:
    """The changes as CDC batches, each with its end position."""
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    txns = [
        Transaction(n, stamp, SeqPosition(n + 1), [change(n * PER_TXN + k) for k in range(PER_TXN)])
        for n in range(records // PER_TXN)
    ]  # fmt: skip
    per = max(size // PER_TXN, 1)
    return [(txns[i : i + per], str(txns[i : i + per][-1].end)) for i in range(0, len(txns), per)]


def applied(url: str, work: list[tuple[list[Transaction], str]]) -> float:
    """Seconds for an applier to apply every batch of ``work``."""
    target = open_target(url)
    plan = ApplyPlan(TABLE, TABLE, {n: n for n in NAMES})
    applier: Applier = open_applier(target, "bench", [plan], ApplyOptions())
    try:
        t0 = time.perf_counter()
        for batch, position in work:
            applier.apply(batch, position, False)
        seconds = time.perf_counter() - t0
        if applier.read_checkpoint() != work[-1][1]:
            raise BenchError(f"{url}: the checkpoint is not the last batch's position")
        return seconds
    finally:
        applier.close()
        target.close()


async def _nats_anchor(server: str, records: int, size: int, body: bytes) -> float:
    import nats

    nc = await nats.connect(server)
    try:
        js = nc.jetstream(publish_async_max_pending=4000)
        await js.add_stream(name="ANCHOR", subjects=["anchor.>"])
        t0 = time.perf_counter()
        for start in range(0, records, size):
            futures = [
                await js.publish_async("anchor.x", body, headers={"Nats-Msg-Id": f"{i:020d}"})
                for i in range(start, min(start + size, records))
            ]
            await asyncio.gather(*futures)
        return time.perf_counter() - t0
    finally:
        await nc.close()


def redis_anchor(port: int, records: int, size: int, body: bytes) -> float:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    t0 = time.perf_counter()
    for start in range(0, records, size):
        pipe = client.pipeline(transaction=True)
        for i in range(start, min(start + size, records)):
            pipe.xadd("anchor", {"record": body, "id": f"{i:020d}"})
        pipe.set("anchor:checkpoint", str(start))
        pipe.execute()
    seconds = time.perf_counter() - t0
    client.close()
    return seconds


def stored(url: str) -> int:
    """Records the target holds for the table, read back and folded (each key once)."""
    from opendms.endpoints import engine_for
    from opendms.endpoints.base import EndpointURL

    parsed = EndpointURL.parse(url)
    rows = engine_for(parsed).table_rows(parsed, {})
    assert rows is not None
    return sum(b.num_rows for b in rows.batches(TABLE, NAMES))


def report(name: str, records: int, ours: float, anchor: float) -> None:
    print(f"{name:<28} {records / ours:>14,.0f} {records / anchor:>14,.0f} {ours / anchor:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000)
    smoke_option(parser)
    args = parser.parse_args()
    smoke_sizes(args, records=2_000, batch=500)
    work = batches(args.records, args.batch)
    body = b"x" * 420  # about one record's JSON
    print(f"records: {args.records:,} in batches of {args.batch:,} (goal >= 20,000/s)")
    print(f"{'target':<28} {'opendms rec/s':>14} {'client rec/s':>14} {'ratio':>9}")
    with NatsServer() as nats_server, RedisServer() as redis_server:
        nats_url, redis_url = nats_server.url("bench"), redis_server.url("bench")
        ours = applied(nats_url, work)
        anchor = asyncio.run(_nats_anchor(nats_server.server_url, args.records, args.batch, body))
        report("NATS JetStream (json)", args.records, ours, anchor)
        ours = applied(redis_url, work)
        anchor = redis_anchor(redis_server.port, args.records, args.batch, body)
        report("Redis Streams (json)", args.records, ours, anchor)
        for url in (nats_url, redis_url):
            if stored(url) != args.records // 2:
                raise BenchError(f"{url}: the stream does not fold to the rows written")
    print("streams fold to the rows written: yes")


if __name__ == "__main__":
    main()
