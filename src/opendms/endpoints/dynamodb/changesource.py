"""Change capture from DynamoDB Streams.

``prepare`` requires each captured table's stream to be enabled with ``NEW_IMAGE`` or
``NEW_AND_OLD_IMAGES`` (an error names the table and the ``aws dynamodb update-table``
that enables it; opendms never changes a source table). Nothing else is created on the
source, so ``drop`` and ``confirm`` have nothing to do: a stream keeps its records 24
hours whatever reads it.

``start`` takes the server's clock: with ``StreamStartPosition`` ``LATEST`` the stream
is read from :data:`MARGIN` before that (older records are skipped: a full load's
``Scan`` that starts afterwards sees their effect); with ``TRIM_HORIZON`` (the default)
from the oldest record kept. A ``Scan`` is no snapshot (``consistent_snapshot`` is
False), so the changes up to the end of the full load (plus :data:`MARGIN`) are applied
idempotently; every record carries the whole new item, so replaying one is harmless.

``stream`` reads the readable shards of every table in turn (one ``GetRecords`` page
each: :mod:`.shards`), one :class:`Transaction` per page (DynamoDB Streams have no
transactions), each ending at the :class:`.position.StreamPosition` after its last
record; the shard list is taken again every :data:`DISCOVER_EVERY` seconds and when a
shard ends. The watermark of a position is the oldest of the readable shards' last
times (a record's creation time, or the server's time when the shard had nothing new)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator
from datetime import datetime, timedelta
from typing import Any, Literal

from opendms.changes import Backlog, Change, Op, Position, TableChange, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.dynamodb.calls import call
from opendms.endpoints.dynamodb.infer import grown
from opendms.endpoints.dynamodb.position import DONE, EPOCH, StreamPosition
from opendms.endpoints.dynamodb.records import change_of, created, sequence
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.endpoints.dynamodb.shards import Page, Shard, TableStream, server_time
from opendms.endpoints.dynamodb.source import SCHEMA, DynamoSource
from opendms.errors import ConfigError
from opendms.model import Table, TableRef

__all__ = ["DynamoChangeSource", "open_change_source"]

log = logging.getLogger("opendms.dynamodb.capture")

MARGIN = timedelta(minutes=2)  # clock rounding and skew around a full load's bounds
DISCOVER_EVERY = 30.0  # seconds between shard listings
IDLE_WAIT = 0.5  # seconds between rounds that found nothing
THROTTLE_WAIT = 1.0
IMAGES = ("NEW_IMAGE", "NEW_AND_OLD_IMAGES")


def open_change_source(url: EndpointURL, task: str, settings: DynamoSettings) -> DynamoChangeSource:
    return DynamoChangeSource(url, task, settings)


class DynamoChangeSource:
    """The DynamoDB Streams of a task's tables."""

    value_form: Literal["pg-text", "python"] = "python"
    consistent_snapshot = False
    can_rewind = True  # a stream is readable from its oldest record, whatever came before

    def __init__(self, url: EndpointURL, task: str, settings: DynamoSettings) -> None:
        self.url, self.task, self.settings = url, task, settings
        self.source = DynamoSource(url, settings)
        self.tables: dict[str, Table] = {}
        self.streams: dict[str, TableStream] = {}
        self.old_rows: set[tuple[str, str]] = set()
        self.at = StreamPosition(EPOCH)  # where the stream is
        self.caught = False
        self.times: dict[str, datetime] = {}  # shard key -> its last time (see docstring)
        self.quiet: set[str] = set()  # shards read up to records written after the start
        self.announced: set[str] = set()  # tables whose columns this stream sent

    @property
    def where(self) -> str:
        return str(self.url)

    # -- lifecycle ----------------------------------------------------------------------

    def prepare(self, tables: list[TableRef]) -> None:
        """Check each table's stream; describe the tables."""
        for ref in tables:
            description = self.source.description(ref.name)
            arn = self._stream_arn(ref.name, description)
            self.tables[ref.name] = self.source.describe(ref)
            self.streams[ref.name] = TableStream(
                self.source.clients.streams(), self.where, ref.name, arn
            )

    def _stream_arn(self, name: str, description: dict[str, object]) -> str:
        spec = description.get("StreamSpecification")
        enabled = isinstance(spec, dict) and spec.get("StreamEnabled")
        view = spec.get("StreamViewType") if isinstance(spec, dict) else None
        arn = description.get("LatestStreamArn")
        if not enabled or view not in IMAGES or not isinstance(arn, str):
            now = f"its stream has view type {view}" if enabled else "it has no stream"
            raise ConfigError(
                f"{self.where}: table {name}: change capture reads the table's DynamoDB "
                f"stream with new images, but {now}; enable it with: aws dynamodb "
                f"update-table --table-name {name} --stream-specification "
                "StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES"
            )
        return arn

    def exists(self) -> bool:
        return bool(self.streams)

    def drop(self) -> None:
        pass  # nothing was created on the source

    def backlog(self, applied: str | None) -> Backlog:
        return Backlog(0, "changes", "DynamoDB Streams keep 24 hours of records (not counted)")

    def close(self) -> None:
        self.source.close()

    # -- positions ----------------------------------------------------------------------

    def parse_position(self, text: str) -> StreamPosition:
        return StreamPosition.parse(text)

    def _server_now(self) -> datetime:
        response = call(self.where, "", self.source.clients.dynamodb().list_tables, Limit=1)
        return server_time(response)

    def current_position(self) -> StreamPosition:
        """Now (by the server's clock) plus :data:`MARGIN`: every record written so far
        is at or before it."""
        return StreamPosition(self._server_now() + MARGIN)

    def start(self) -> tuple[StreamPosition, str | None]:
        if self.settings.StreamStartPosition == "TRIM_HORIZON":
            return StreamPosition(EPOCH), None
        since = self._server_now() - MARGIN
        return StreamPosition(since, since), None

    def release_snapshot(self) -> None:
        pass

    # -- streaming ----------------------------------------------------------------------

    def stream(self, start: Position, stop: threading.Event) -> Generator[Transaction | None]:
        self.at = _stream_position(start)
        self.caught, self.times, self.quiet, self.announced = False, {}, set(), set()
        began = self._server_now()
        listed = 0.0
        while not stop.is_set():
            if time.monotonic() - listed > DISCOVER_EVERY:
                self.at, listed = self._discover(self.at), time.monotonic()
            found = False
            for txn, closed in self._round(began, stop):
                listed = 0.0 if closed else listed  # a closed shard's children: list them
                if txn is not None:
                    found = True
                    yield txn
            if listed:  # not while a shard's children are still to be listed
                readable = {shard.key for _s, shard in self._readable(self.at)}
                self.caught = self.caught or readable <= self.quiet
            if not found:
                yield None
                stop.wait(IDLE_WAIT)

    def _round(
        self, began: datetime, stop: threading.Event
    ) -> Iterator[tuple[Transaction | None, bool]]:
        """One page of each readable shard: (its transaction, whether the shard ended)."""
        for stream, shard in self._readable(self.at):
            if stop.is_set():
                return
            page = stream.fetch(shard, self.at)
            self.at, txn = self._take(shard, page, self.at)
            if _quiet(page, began):
                self.quiet.add(shard.key)
            if page.throttled:
                stop.wait(THROTTLE_WAIT)
            yield txn, page.closed

    def _discover(self, at: StreamPosition) -> StreamPosition:
        gone: set[str] = set()
        for stream in self.streams.values():
            stream.discover()
            gone |= stream.gone(at)
        return at.without(gone)

    def _readable(self, at: StreamPosition) -> list[tuple[TableStream, Shard]]:
        return [(s, shard) for s in self.streams.values() for shard in s.readable(at)]

    def _take(
        self, shard: Shard, page: Page, at: StreamPosition
    ) -> tuple[StreamPosition, Transaction | None]:
        """The position after ``page`` and its transaction (None: no changes in it)."""
        if page.records:
            at = at.with_shard(shard.key, sequence(page.records[-1]))
            self.times[shard.key] = created(page.records[-1])
        elif not page.throttled:
            self.times[shard.key] = page.at
        if page.closed:
            at = at.with_shard(shard.key, DONE)
            self.times.pop(shard.key, None)
        at = self._watermarked(at)
        wanted = [r for r in page.records if at.since is None or created(r) >= at.since]
        if not wanted:
            return at, None
        changes = [c for r in wanted for c in self._changes(shard.table, r)]
        xid = int(sequence(wanted[-1])) & 0x7FFF_FFFF_FFFF_FFFF
        return at, Transaction(xid, created(wanted[-1]), at, changes)

    def _changes(self, name: str, record: dict[str, Any]) -> list[Change]:
        """The change of ``record``, after a ``columns`` marker (the table's columns,
        which the engine compares with its own and adds the missing ones to the target)
        for the table's first change in this stream and when the item has attributes
        the table had no column for."""
        out: list[Change] = []
        images = [record["dynamodb"].get(k) for k in ("NewImage", "OldImage")]
        bigger = grown(self.tables[name], [i for i in images if i])
        if bigger is not None:
            self.tables[name] = bigger
            log.info("table %s: new attributes become columns", name)
        if bigger is not None or name not in self.announced:
            self.announced.add(name)
            marker = TableChange("columns", table=self.tables[name])
            out.append(Change(Op.DDL, SCHEMA, name, table_ddl=marker))
        whole = (SCHEMA, name) in self.old_rows
        return [*out, change_of(self.tables[name], record, whole)]

    def _watermarked(self, at: StreamPosition) -> StreamPosition:
        """``at`` with its watermark moved to the oldest readable shard's time (not while
        a readable shard has not been read yet)."""
        keys = [shard.key for _s, shard in self._readable(at)]
        if not keys or any(k not in self.times for k in keys):
            return at
        return at.advanced(min(self.times[k] for k in keys))

    def caught_up(self) -> bool:
        """Every readable shard was read empty, or up to a record written after the
        stream began."""
        return self.caught

    def confirm(self, position: Position) -> None:
        pass  # records leave the stream by age, not by being read


def _quiet(page: Page, began: datetime) -> bool:
    """Whether ``page`` shows its shard holds nothing written before ``began`` unread."""
    if page.throttled:
        return False
    return not page.records or created(page.records[-1]) >= began


def _stream_position(position: Position) -> StreamPosition:
    if not isinstance(position, StreamPosition):
        raise ConfigError(f"{position!r} is not a DynamoDB Streams position")
    return position
