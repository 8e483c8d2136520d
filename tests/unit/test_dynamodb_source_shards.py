"""Shard lineage of the DynamoDB change source, which neither moto (one shard per table,
never closed) nor dynalite (no Streams) can show: a parent shard read to its end before
the two shards it split into, on an in-memory stand-in for the Streams API."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from opendms.changes import Op
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.dynamodb import changesource
from opendms.endpoints.dynamodb.changesource import DynamoChangeSource
from opendms.endpoints.dynamodb.infer import table_of
from opendms.endpoints.dynamodb.position import StreamPosition
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.endpoints.dynamodb.shards import TableStream
from opendms.errors import TaskError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_idle_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changesource, "IDLE_WAIT", 0)


def _record(seq: int) -> dict[str, Any]:
    item = {"id": {"N": str(seq)}}
    return {
        "eventName": "INSERT",
        "dynamodb": {
            "SequenceNumber": str(seq),
            "ApproximateCreationDateTime": T0 + timedelta(seconds=seq),
            "Keys": item,
            "NewImage": item,
        },
    }


class Streams:
    """The Streams API over fixed shards: ``parent`` closed (records 1-3), split into
    ``left`` (4, 6) and ``right`` (5, 7), both open. Pages of two records; one shard
    per ``DescribeStream`` page."""

    SHARDS = [("left", "parent"), ("parent", None), ("right", "parent")]
    RECORDS = {"parent": [1, 2, 3], "left": [4, 6], "right": [5, 7]}

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str = "") -> Any:  # noqa: N803
        ids = [s for s, _p in self.SHARDS]
        at = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        shard_id, parent = self.SHARDS[at]
        shard: dict[str, Any] = {"ShardId": shard_id}
        if parent:
            shard["ParentShardId"] = parent
        page: dict[str, Any] = {"Shards": [shard]}
        if at + 1 < len(ids):
            page["LastEvaluatedShardId"] = shard_id
        return {"StreamDescription": page}

    def get_shard_iterator(self, **args: Any) -> Any:
        seqs = self.RECORDS[args["ShardId"]]
        after = int(args.get("SequenceNumber", 0))
        return {"ShardIterator": f"{args['ShardId']}:{sum(s <= after for s in seqs)}"}

    def get_records(self, ShardIterator: str, Limit: int) -> Any:  # noqa: N803
        shard, _, at = ShardIterator.partition(":")
        seqs = self.RECORDS[shard][int(at) : int(at) + 2]
        end = int(at) + len(seqs)
        closed = shard == "parent" and end == len(self.RECORDS[shard])
        page: dict[str, Any] = {"Records": [_record(s) for s in seqs]}
        if not closed:
            page["NextShardIterator"] = f"{shard}:{end}"
        return page


def _capture() -> DynamoChangeSource:
    """A change source of table ``t`` on :class:`Streams` (no idle waits)."""
    url = EndpointURL.parse("dynamodb://?region=us-east-1")
    capture = DynamoChangeSource(url, "t", DynamoSettings())
    description = {
        "TableName": "t",
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "N"}],
    }
    capture.tables["t"] = table_of("dynamodb", description, [])
    capture.streams["t"] = TableStream(Streams(), "test", "t", "arn:t")
    capture._server_now = lambda: T0 + timedelta(hours=1)  # type: ignore[method-assign]
    return capture


def _sequences(position: StreamPosition) -> tuple[list[int], StreamPosition]:
    capture = _capture()
    stop = threading.Event()
    out: list[int] = []
    for txn in capture.stream(position, stop):
        if txn is None and capture.caught_up():
            break
        if txn is None:
            continue
        out += [int(c.values[0]) for c in txn.changes if c.op is not Op.DDL]
        position = txn.end  # type: ignore[assignment]
    return out, position


def test_a_parent_shard_is_read_to_its_end_before_its_children() -> None:
    got, end = _sequences(StreamPosition.parse("1970-01-01T00:00:00Z|since=1970-01-01T00:00:00Z"))
    assert got[:3] == [1, 2, 3] and sorted(got[3:]) == [4, 5, 6, 7]
    assert [s for s in got if s in (4, 6)] == [4, 6] and [s for s in got if s in (5, 7)] == [5, 7]
    assert end.state("t/parent") == "done" and end.state("t/left") == "6"
    assert end.watermark == T0 + timedelta(seconds=6)  # the slower child's last record


def test_a_resumed_position_reads_only_what_follows_it() -> None:
    start = StreamPosition.parse("2026-01-01T00:00:04Z|t/parent=done|t/left=4")
    got, _ = _sequences(start)
    assert sorted(got) == [5, 6, 7]


def test_records_before_since_are_skipped() -> None:
    got, _ = _sequences(StreamPosition.parse("2026-01-01T00:00:05Z"))
    assert sorted(got) == [5, 6, 7]


def test_a_half_read_shard_gone_from_the_stream_fails() -> None:
    with pytest.raises(TaskError, match=r"t/old after position 9.*reload the table"):
        _sequences(StreamPosition.parse("2026-01-01T00:00:00Z|t/old=9"))


class TrimmedStreams(Streams):
    """Streams whose records after any sequence number were trimmed."""

    def get_shard_iterator(self, **args: Any) -> Any:
        if "SequenceNumber" in args:
            error = {"Error": {"Code": "TrimmedDataAccessException", "Message": "trimmed"}}
            raise ClientError(error, "GetShardIterator")
        return super().get_shard_iterator(**args)


def test_a_position_trimmed_from_a_listed_shard_fails_with_a_reload_hint() -> None:
    capture = _capture()
    capture.streams["t"] = TableStream(TrimmedStreams(), "test", "t", "arn:t")
    position = StreamPosition.parse("2026-01-01T00:00:00Z|t/parent=2")
    with pytest.raises(TaskError, match=r"shard t/parent after position 2 .*reload the table"):
        next(capture.stream(position, threading.Event()))
