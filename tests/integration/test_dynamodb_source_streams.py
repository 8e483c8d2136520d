"""DynamoDB as a change source: DynamoDB Streams on a real moto server (dynalite has no
Streams). Changes in order with their images, resume from a saved position without
repeats or gaps, an expired iterator taken again, and the errors a user can meet."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from opendms.changes import Change, Op, Transaction
from opendms.endpoints import open_change_source
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.dynamodb import shards
from opendms.endpoints.dynamodb.changesource import DynamoChangeSource
from opendms.endpoints.dynamodb.position import StreamPosition
from opendms.errors import ConfigError, TaskError
from opendms.model import TableRef

KEY = [{"AttributeName": "id", "KeyType": "HASH"}]
DEFS = [{"AttributeName": "id", "AttributeType": "N"}]


def _table(client: Any, view: str | None = "NEW_AND_OLD_IMAGES") -> str:
    name = f"cdc_{uuid.uuid4().hex[:8]}"
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": KEY,
        "AttributeDefinitions": DEFS,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if view:
        args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    client.create_table(**args)
    client.put_item(TableName=name, Item={"id": {"N": "0"}, "v": {"S": "seed"}, "n": {"N": "1"}})
    return name


def _capture(url: str, name: str, settings: dict[str, Any] | None = None) -> DynamoChangeSource:
    capture = open_change_source(EndpointURL.parse(url), "t", settings or {})
    assert isinstance(capture, DynamoChangeSource)
    capture.prepare([TableRef("dynamodb", name)])
    return capture


def _take(
    capture: DynamoChangeSource, start: Any, want: int, ddl: bool = False
) -> tuple[list[Change], Any]:
    """The first ``want`` row changes (``ddl``: DDL changes too) from ``start`` and the
    position after them."""
    stop = threading.Event()
    out: list[Change] = []
    end = start
    stream: Iterator[Transaction | None] = capture.stream(start, stop)
    for _ in range(200):
        txn = next(stream)
        if txn is not None:
            out += [c for c in txn.changes if ddl or c.op is not Op.DDL]
            end = txn.end
        if len(out) >= want or (txn is None and capture.caught_up()):
            break
    stop.set()
    return out, end


def _rows(changes: list[Change]) -> list[tuple[Op, dict[str, Any], dict[str, Any]]]:
    return [(c.op, dict(zip(c.columns, c.values, strict=True)), c.before()) for c in changes]


def test_insert_modify_remove_arrive_in_order_with_their_images(
    moto_server: Any, moto_url: str
) -> None:
    client = moto_server.client()
    name = _table(client)
    capture = _capture(moto_url, name, {"StreamStartPosition": "LATEST"})
    capture.old_rows = {("dynamodb", name)}
    try:
        start, snapshot = capture.start()
        assert snapshot is None
        client.put_item(
            TableName=name, Item={"id": {"N": "1"}, "v": {"S": "a"}, "n": {"N": "1.50"}}
        )
        client.update_item(
            TableName=name,
            Key={"id": {"N": "1"}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"S": "b"}},
        )
        client.delete_item(TableName=name, Key={"id": {"N": "1"}})
        changes, _ = _take(capture, start, 4)
    finally:
        capture.close()
    # the seed item came before LATEST's margin? No: it is within it, so it is replayed
    ops = _rows(changes)
    assert ops == [
        (Op.INSERT, {"id": "0", "n": "1", "v": "seed"}, {}),
        (Op.INSERT, {"id": "1", "n": "1.5", "v": "a"}, {}),
        (Op.UPDATE, {"id": "1", "n": "1.5", "v": "b"}, {"id": "1", "n": "1.5", "v": "a"}),
        (Op.DELETE, {}, {"id": "1", "n": "1.5", "v": "b"}),
    ]
    assert [c.key for c in changes[2:]] == [("1",), ("1",)]


def test_resume_from_a_saved_position_has_no_repeats_and_no_gaps(
    moto_server: Any, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shards, "PAGE_RECORDS", 2)  # positions inside the shard
    client = moto_server.client()
    name = _table(client)
    for i in range(1, 6):
        client.put_item(TableName=name, Item={"id": {"N": str(i)}, "v": {"S": f"v{i}"}})
    capture = _capture(moto_url, name)
    try:
        start, _ = capture.start()
        first, saved = _take(capture, start, 3)
        assert len(first) == 4  # two pages
    finally:
        capture.close()
    text = str(saved)
    for i in range(6, 9):
        client.put_item(TableName=name, Item={"id": {"N": str(i)}, "v": {"S": f"v{i}"}})
    again = _capture(moto_url, name)
    try:
        position = again.parse_position(text)
        assert str(position) == text and position == saved
        rest, _ = _take(again, position, 6)
    finally:
        again.close()
    ids = [c.values[0] for c in first + rest]
    assert ids == [str(i) for i in range(9)]


def test_an_expired_iterator_is_taken_again_from_the_position(
    moto_server: Any, moto_url: str
) -> None:
    client = moto_server.client()
    name = _table(client)
    capture = _capture(moto_url, name)
    try:
        start, _ = capture.start()
        first, at = _take(capture, start, 1)
        stream = capture.streams[name]
        real = stream.client
        expired = {"left": 1}

        class Expiring:
            """The real client, whose next GetRecords answers as an expired iterator."""

            def __getattr__(self, attr: str) -> Any:
                return getattr(real, attr)

            def get_records(self, **kwargs: Any) -> Any:
                if expired["left"]:
                    expired["left"] -= 1
                    raise real.exceptions.ExpiredIteratorException(
                        {"Error": {"Code": "ExpiredIteratorException", "Message": "old"}},
                        "GetRecords",
                    )
                return real.get_records(**kwargs)

        stream.client = Expiring()
        client.put_item(TableName=name, Item={"id": {"N": "7"}, "v": {"S": "x"}})
        rest, _ = _take(capture, at, 1)
    finally:
        capture.close()
    assert expired["left"] == 0
    assert [c.values[0] for c in first + rest] == ["0", "7"]


def test_a_position_the_stream_no_longer_holds_fails_with_a_reload_hint(
    moto_server: Any, moto_url: str
) -> None:
    client = moto_server.client()
    name = _table(client)
    capture = _capture(moto_url, name)
    try:
        lost = StreamPosition.parse(f"2026-01-01T00:00:00Z|{name}/shardId-gone=123")
        with pytest.raises(TaskError, match="reload the table"):
            next(capture.stream(lost, threading.Event()))
    finally:
        capture.close()


@pytest.mark.parametrize("view", [None, "KEYS_ONLY"])
def test_a_table_without_a_new_image_stream_is_refused_by_name(
    moto_server: Any, moto_url: str, view: str | None
) -> None:
    name = _table(moto_server.client(), view)
    with pytest.raises(ConfigError, match=f"table {name}: .*update-table --table-name {name}"):
        _capture(moto_url, name)


def test_positions_order_by_watermark_and_round_trip() -> None:
    a = StreamPosition.parse("2026-01-01T00:00:00Z|since=2025-12-31T23:58:00Z|t/s1=5|t/s0=done")
    b = StreamPosition.parse("2026-01-01T00:00:01.5Z")
    assert (
        a < b
        and b > a
        and a <= a
        and str(a) == ("2026-01-01T00:00:00.000Z|since=2025-12-31T23:58:00.000Z|t/s0=done|t/s1=5")
    )
    assert b.since == b.watermark and a.state("t/s1") == "5" and a.state("t/s2") is None
    with pytest.raises(ConfigError):
        StreamPosition.parse("16/B374D848")


def test_an_attribute_first_seen_in_the_stream_becomes_a_column(
    moto_server: Any, moto_url: str
) -> None:
    client = moto_server.client()
    name = _table(client)
    capture = _capture(moto_url, name)
    try:
        start, _ = capture.start()
        client.put_item(
            TableName=name, Item={"id": {"N": "1"}, "v": {"S": "a"}, "w": {"BOOL": True}}
        )
        changes, _ = _take(capture, start, 4, ddl=True)
    finally:
        capture.close()
    first, seed, grown, insert = changes
    assert first.op is Op.DDL and first.table_ddl is not None and first.table_ddl.table is not None
    assert [c.name for c in first.table_ddl.table.columns] == ["id", "n", "v"]
    assert seed.op is Op.INSERT and seed.values == ("0", "1", "seed")
    assert grown.table_ddl is not None and grown.table_ddl.table is not None
    assert [(c.name, c.type.kind.value) for c in grown.table_ddl.table.columns][3:] == [
        ("w", "bool")
    ]
    assert insert.columns == ("id", "n", "v", "w") and insert.values == ("1", None, "a", True)
