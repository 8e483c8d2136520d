"""One table's DynamoDB stream: its shards and their lineage, shard iterators, and
``GetRecords`` pages.

A shard is read only once its parent is read to its end (``done`` in the position) or
is gone from the stream (trimmed after 24 hours), so an item's records arrive in the
order they were written, across splits. A shard is read from after the position's
sequence number (``AFTER_SEQUENCE_NUMBER``), else from its oldest record
(``TRIM_HORIZON``). An expired iterator (15 minutes unused) is taken again from the
position; a position the stream no longer holds (``TrimmedDataAccessException``, or a
shard half read and then trimmed) is a TaskError saying to reload the table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from opendms.endpoints.dynamodb.calls import translate
from opendms.endpoints.dynamodb.client import error_code
from opendms.endpoints.dynamodb.position import DONE, StreamPosition
from opendms.errors import TaskError

__all__ = ["Page", "Shard", "TableStream", "server_time"]

log = logging.getLogger("opendms.dynamodb.streams")

PAGE_RECORDS = 1000
_EXPIRED = {"ExpiredIteratorException"}
_THROTTLED = {"LimitExceededException", "ThrottlingException"}


@dataclass(frozen=True)
class Shard:
    table: str
    id: str
    parent: str | None = None

    @property
    def key(self) -> str:
        """The shard's name in a position: ``<table>/<shardId>``."""
        return f"{self.table}/{self.id}"


@dataclass(frozen=True)
class Page:
    """A ``GetRecords`` answer: its records, whether the shard ended with it, the server
    time of the answer, and whether the server asked to slow down."""

    records: list[dict[str, Any]]
    closed: bool
    at: datetime
    throttled: bool = False


def server_time(response: dict[str, Any]) -> datetime:
    """The server's clock when it answered (its ``Date`` header), else ours."""
    header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(header).astimezone(UTC) if header else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)


class TableStream:
    """The stream (``arn``) of one source table."""

    def __init__(self, client: Any, where: str, table: str, arn: str) -> None:
        self.client, self.where, self.table, self.arn = client, where, table, arn
        self.shards: dict[str, Shard] = {}
        self.iterators: dict[str, str] = {}

    def discover(self) -> None:
        """List the stream's shards (``DescribeStream``, page by page)."""
        found: dict[str, Shard] = {}
        args: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            page = self._call(self.client.describe_stream, **args)["StreamDescription"]
            for s in page.get("Shards", []):
                found[s["ShardId"]] = Shard(self.table, s["ShardId"], s.get("ParentShardId"))
            if not page.get("LastEvaluatedShardId"):
                break
            args["ExclusiveStartShardId"] = page["LastEvaluatedShardId"]
        self.shards = found

    def readable(self, at: StreamPosition) -> list[Shard]:
        """Shards to read now: not done, their parent done or gone."""
        out = []
        for shard in self.shards.values():
            if at.state(shard.key) == DONE:
                continue
            parent = self.shards.get(shard.parent or "")
            if parent is None or at.state(parent.key) == DONE:
                out.append(shard)
        return out

    def gone(self, at: StreamPosition) -> set[str]:
        """Keys of this table's shards in ``at`` the stream no longer lists; TaskError
        when one was not read to its end (its remaining records are lost)."""
        prefix = f"{self.table}/"
        keys = {k for k, _s in at.shards if k.startswith(prefix)}
        lost = keys - {s.key for s in self.shards.values()}
        for key in sorted(lost):
            if at.state(key) != DONE:
                raise self._trimmed(key, at)
        return lost

    def fetch(self, shard: Shard, at: StreamPosition) -> Page:
        """The next records of ``shard`` after ``at``."""
        for attempt in (1, 2):
            iterator = self.iterators.get(shard.id) or self._iterator(shard, at)
            try:
                response = self.client.get_records(ShardIterator=iterator, Limit=PAGE_RECORDS)
            except Exception as exc:  # botocore ClientError: translated below
                self.iterators.pop(shard.id, None)
                code = error_code(exc)
                if code in _EXPIRED and attempt == 1:
                    log.info("%s: shard iterator of %s expired; taken again", self.where, shard.key)
                    continue
                if code in _THROTTLED:
                    return Page([], False, datetime.now(UTC), throttled=True)
                raise self._error(shard, at, exc) from exc
            return self._page(shard, response)
        raise AssertionError("unreachable")

    def _page(self, shard: Shard, response: dict[str, Any]) -> Page:
        following = response.get("NextShardIterator")
        if following:
            self.iterators[shard.id] = following
        else:
            self.iterators.pop(shard.id, None)
        return Page(list(response.get("Records", [])), not following, server_time(response))

    def _iterator(self, shard: Shard, at: StreamPosition) -> str:
        args: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard.id}
        state = at.state(shard.key)
        if state is None:
            args["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=state)
        try:
            return str(self.client.get_shard_iterator(**args)["ShardIterator"])
        except Exception as exc:  # botocore ClientError
            raise self._error(shard, at, exc) from exc

    def _error(self, shard: Shard, at: StreamPosition, exc: Exception) -> Exception:
        if error_code(exc) == "TrimmedDataAccessException":
            return self._trimmed(shard.key, at)
        return translate(self.where, self.table, exc)

    def _trimmed(self, key: str, at: StreamPosition) -> TaskError:
        return TaskError(
            f"{self.where}: table {self.table}: the stream no longer holds the records of "
            f"shard {key} after position {at.state(key)} (DynamoDB Streams keep records "
            "24 hours): the changes since are lost; reload the table (run the task with "
            "--fresh for a new full load)"
        )

    def _call(self, fn: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = fn(**kwargs)
        except Exception as exc:  # botocore ClientError
            raise translate(self.where, self.table, exc) from exc
        return result
