"""The ``nats://`` and ``redis://`` targets beyond the conformance suite: a NATS stream per
task, JetStream's duplicate window after a crash before the checkpoint, the Arrow message
format, records valid against the change-record JSON Schema, mapping renames, MaxLen, test
connection."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
import redis

from opendms.changes import ApplyPlan, Change, Op, SeqPosition, Transaction
from opendms.endpoints import check_endpoint, open_applier, open_target
from opendms.endpoints.base import EndpointURL, PrepMode
from opendms.endpoints.engine import ApplyOptions
from opendms.endpoints.natsjs.apply import NatsApplier
from opendms.endpoints.natsjs.engine import ENGINE as NATS
from opendms.endpoints.redisstreams.engine import ENGINE as REDIS
from opendms.envelope import json_schema
from opendms.errors import EndpointError
from opendms.model import Column, ColumnType, Kind, Table
from tests.support.brokers import NatsServer, RedisServer

TABLE = Table(
    "app",
    "orders",
    (
        Column("id", ColumnType(Kind.INT64), nullable=False),
        Column("price", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
        Column("day", ColumnType(Kind.DATE)),
    ),
    primary_key=("id",),
)
NAMES = ("id", "price", "day")
_FIELDS: list[pa.Field[Any]] = [
    pa.field("id", pa.int64()),
    pa.field("price", pa.decimal128(10, 2)),
    pa.field("day", pa.date32()),
]
ARROW = pa.schema(_FIELDS)


def _row(i: int) -> tuple[Any, ...]:
    return (i, Decimal(f"{i}.25"), dt.date(2024, 2, 29))


def _txn(n: int, *changes: Change) -> Transaction:
    return Transaction(n, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), SeqPosition(n), list(changes))


def _ins(i: int) -> Change:
    return Change(Op.INSERT, "app", "orders", NAMES, _row(i))


def _plan(target: Table = TABLE, names: dict[str, str] | None = None) -> ApplyPlan:
    return ApplyPlan(TABLE, target, names or {n: n for n in NAMES})


def _load(url: str, rows: list[tuple[Any, ...]], task: str | None = None, **settings: Any) -> None:
    target = open_target(url, settings, task)
    try:
        target.prepare(TABLE, PrepMode.DROP_AND_CREATE)
        writer = target.writer(TABLE, None)
        columns = [[r[k] for r in rows] for k in range(len(NAMES))]
        writer.write(pa.record_batch(columns, schema=ARROW))
        writer.close()
    finally:
        target.close()


def _read(engine: Any, url: str, task: str | None = None, **settings: Any) -> list[dict[str, Any]]:
    rows = engine.table_rows(EndpointURL.parse(url), settings, task)
    got = pa.Table.from_batches(list(rows.batches(TABLE, NAMES))).to_pylist()
    return sorted(got, key=lambda r: int(r["id"]))


async def _nats_bodies(server: str, stream: str, subject: str) -> list[bytes]:
    import nats

    nc = await nats.connect(server)
    try:
        sub = await nc.jetstream().pull_subscribe(subject, stream=stream)
        left = (await sub.consumer_info()).num_pending
        out: list[bytes] = []
        while left:
            msgs = await sub.fetch(min(left, 100), timeout=5)
            out += [m.data for m in msgs]
            left -= len(msgs)
        return out
    finally:
        await nc.close()


def test_nats_republished_batch_is_dropped_by_the_duplicate_window(
    nats_server: NatsServer, nats_url: str
) -> None:
    """A crash after the acks, before the checkpoint: the restarted task publishes the
    batch again, and JetStream keeps one copy of each record."""
    batch = [_txn(1, _ins(1), _ins(2)), _txn(2, _ins(3))]
    target = open_target(nats_url, task="t")
    try:
        first = open_applier(target, "t", [_plan()], ApplyOptions())
        assert isinstance(first, NatsApplier)
        first.target.publish(first.plans.records(batch), ids=True)  # no checkpoint: crash
        again = NatsApplier(first.target, "t", [_plan()])
        assert again.read_checkpoint() is None
        assert again.apply(batch, "2", idempotent=False) == 3
        assert again.duplicates == 3 and again.read_checkpoint() == "2"
    finally:
        target.close()
    prefix = nats_url.rsplit("/", 1)[1]
    bodies = asyncio.run(
        _nats_bodies(nats_server.server_url, f"OPENDMS_{prefix}_t", f"{prefix}.t.app.orders")
    )
    assert [json.loads(b)["after"]["id"] for b in bodies] == [1, 2, 3]


@pytest.mark.parametrize("kind", ["nats", "redis"])
def test_arrow_format_round_trips(kind: str, request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue(f"{kind}_url"))
    settings = {"MessageFormat": "arrow"}
    engine = NATS if kind == "nats" else REDIS
    target = engine.open_target(EndpointURL.parse(url), settings)
    try:
        target.prepare(TABLE, PrepMode.DROP_AND_CREATE)
        applier = engine.applier(target, "t", [_plan()], ApplyOptions())
        applier.apply([_txn(1, _ins(1), _ins(2))], "1", idempotent=False)
    finally:
        target.close()
    rows = engine.table_rows(EndpointURL.parse(url), settings)
    got = pa.Table.from_batches(list(rows.batches(TABLE, NAMES))).to_pylist()
    assert sorted(got, key=lambda r: r["id"]) == [
        dict(zip(NAMES, _row(i), strict=True)) for i in (1, 2)
    ]
    if kind == "redis":  # what a consumer reads: an Arrow IPC stream of one record
        server: RedisServer = request.getfixturevalue("redis_server")
        client = redis.Redis(host="127.0.0.1", port=server.port)
        prefix = url.rsplit("/", 1)[1]
        entries: Any = client.xrange(f"{prefix}:app.orders", "-", "+")
        client.close()
        record = pa.ipc.open_stream(entries[-1][1][b"record"]).read_all().to_pylist()[0]
        assert record["op"] == "I" and json.loads(record["after"])["price"] == {"$decimal": "2.25"}


def test_redis_records_are_valid_change_records_with_target_names(
    redis_server: RedisServer, redis_url: str
) -> None:
    """Full-load and CDC records pass the JSON Schema; CDC records name the mapped
    target table and columns; the checkpoint key is written with the batch."""
    _load(redis_url, [_row(1), _row(2)])
    renamed = Table("sales", "orders2", (Column("order_id", ColumnType(Kind.INT64), False),
                    *TABLE.columns[1:]), primary_key=("order_id",))  # fmt: skip
    target = open_target(redis_url)
    try:
        applier = open_applier(target, "t", [_plan(renamed, {"id": "order_id", "price": "price",
                               "day": "day"})], ApplyOptions())  # fmt: skip
        update = Change(Op.UPDATE, "app", "orders", NAMES, _row(1), ("id",), (1,))
        assert applier.apply([_txn(7, update)], "7", idempotent=False) == 1
    finally:
        target.close()
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    prefix = redis_url.rsplit("/", 1)[1]
    loaded: Any = client.xrange(f"{prefix}:app.orders", "-", "+")
    changed: Any = client.xrange(f"{prefix}:sales.orders2", "-", "+")
    checkpoint = client.get(f"{prefix}:checkpoint:t")
    client.close()
    records = [json.loads(f[b"record"]) for _, f in [*loaded, *changed]]
    for record in records:
        jsonschema.validate(record, json_schema())
    assert [r["op"] for r in records] == ["T", "I", "I", "U"]
    assert records[3]["key"] == {"order_id": 1} and records[3]["table"] == "orders2"
    assert changed[0][1][b"id"].decode() == "00000000000000000007-0000000000"
    assert checkpoint == b"7"


def test_redis_maxlen_trims_each_stream(redis_server: RedisServer, redis_url: str) -> None:
    target = REDIS.open_target(EndpointURL.parse(redis_url), {"MaxLen": "5"})
    try:
        applier = REDIS.applier(target, "t", [_plan()], ApplyOptions())
        for n in range(1, 301):
            applier.apply([_txn(n, _ins(n))], str(n), idempotent=False)
    finally:
        target.close()
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    length = client.xlen(f"{redis_url.rsplit('/', 1)[1]}:app.orders")
    client.close()
    assert 5 <= length < 300  # MAXLEN ~ trims whole nodes of the stream


def test_check_names_server_versions(nats_url: str, redis_url: str) -> None:
    assert "NATS JetStream server 2." in check_endpoint(nats_url)
    assert "Redis Streams on Redis " in check_endpoint(redis_url)


@pytest.mark.parametrize("scheme", ["nats", "redis"])
def test_unreachable_server_is_an_endpoint_error(scheme: str) -> None:
    from tests.support.servers import free_port

    url = f"{scheme}://127.0.0.1:{free_port()}/x"
    with pytest.raises(EndpointError, match=f"{scheme}://127.0.0.1"):
        check_endpoint(url, {"TimeoutSeconds": 2})


async def _stream_subjects(server: str) -> dict[str, list[str]]:
    import nats

    nc = await nats.connect(servers=[server])
    try:
        infos = await nc.jetstream().streams_info()
        return {i.config.name or "": list(i.config.subjects or []) for i in infos}
    finally:
        await nc.close()


def test_nats_stream_per_task(nats_server: NatsServer, nats_url: str) -> None:
    """Two tasks on one endpoint publish to a stream each, a subject per table; tasks
    told to share a stream (``StreamName``) have their subjects added to it."""
    prefix = nats_url.rsplit("/", 1)[1]
    _load(nats_url, [_row(1), _row(2)], task="first")
    _load(nats_url, [_row(3)], task="second")
    _load(nats_url, [_row(4)], task="third", StreamName=f"SHARED_{prefix}")
    _load(nats_url, [_row(5)], task="fourth", StreamName=f"SHARED_{prefix}")
    streams = asyncio.run(_stream_subjects(nats_server.server_url))
    assert streams[f"OPENDMS_{prefix}_first"] == [f"{prefix}.first.>"]
    assert streams[f"OPENDMS_{prefix}_second"] == [f"{prefix}.second.>"]
    assert streams[f"SHARED_{prefix}"] == [f"{prefix}.third.>", f"{prefix}.fourth.>"]
    assert [r["id"] for r in _read(NATS, nats_url, "first")] == [1, 2]
    assert [r["id"] for r in _read(NATS, nats_url, "second")] == [3]
    assert [r["id"] for r in _read(NATS, nats_url, "fourth", StreamName=f"SHARED_{prefix}")] == [5]
    bodies = asyncio.run(
        _nats_bodies(
            nats_server.server_url, f"OPENDMS_{prefix}_second", f"{prefix}.second.app.orders"
        )
    )
    assert [json.loads(b)["op"] for b in bodies] == ["T", "I"]
