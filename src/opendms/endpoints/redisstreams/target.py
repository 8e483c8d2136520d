"""The full-load target and the read-back of a ``redis://`` endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection
from opendms.endpoints.brokerrecords import (
    batches,
    decode,
    encode,
    fold,
    load_records,
    truncate_record,
)
from opendms.endpoints.redisstreams.engine import RedisSettings, guarded
from opendms.envelope import ChangeRecord, record_id
from opendms.model import Table

if TYPE_CHECKING:
    from redis import Redis
    from redis.client import Pipeline

PAGE = 10_000
"""Entries read by one XRANGE."""


class RedisTarget:
    """Appends full-load rows as ``I`` records; holds the client CDC uses too."""

    def __init__(self, url: EndpointURL, settings: RedisSettings, client: Redis) -> None:
        self.url, self.settings, self.client = url, settings, client

    def add(self, pipe: Pipeline, records: list[ChangeRecord], ids: bool) -> None:
        """Queue an XADD of each of ``records`` on ``pipe`` (``ids``: with an ``id``
        field, the record id; full-load records have none)."""
        fmt, maxlen = self.settings.MessageFormat, self.settings.MaxLen or None
        for r in records:
            fields: dict[Any, Any] = {"record": encode(r, fmt)}
            if ids:
                fields["id"] = record_id(r)
            pipe.xadd(
                self.settings.stream(r.schema, r.table), fields, maxlen=maxlen, approximate=True
            )

    def send(self, records: list[ChangeRecord], extra: dict[str, str] | None = None) -> None:
        """XADD ``records`` (and SET the ``extra`` keys) in one MULTI/EXEC transaction;
        CDC records (those with ``extra``, a checkpoint) get their record id."""
        pipe = self.client.pipeline(transaction=True)
        self.add(pipe, records, ids=extra is not None)
        for key, value in (extra or {}).items():
            pipe.set(key, value)
        guarded(self.url, pipe.execute)

    def prepare(self, table: Table, mode: PrepMode) -> None:
        if mode is not PrepMode.DO_NOTHING:
            self.send([truncate_record(table)])

    def writer(self, table: Table, segment: int | str | None) -> RedisWriter:
        return RedisWriter(self, table)

    def finish(self, table: Table) -> None:
        """No indexes to build."""

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        return []  # every canonical value has a JSON form in a change record

    def drop_table(self, table: Table) -> None:
        self.send([truncate_record(table)])

    def rename_table(self, old: Table, new: Table) -> None:
        """Streams are not renamed: later records go to the new table's stream."""

    def close(self) -> None:
        self.client.close()


class RedisWriter:
    """Appends the batches of one table's load."""

    def __init__(self, target: RedisTarget, table: Table) -> None:
        self.target, self.table, self.rows = target, table, 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.target.send(load_records(self.table, batch, self.rows))
        self.rows += batch.num_rows

    def close(self) -> int:
        return self.rows

    def abort(self) -> None:
        """Appended rows stay (a reload sends a ``T`` record first)."""


class RedisRows:
    """Reads a table back by folding its stream's records (validation, conformance)."""

    def __init__(self, url: EndpointURL, settings: RedisSettings, client: Redis) -> None:
        self.url, self.settings, self.client = url, settings, client

    def batches(self, table: Table, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        try:
            bodies = list(self.entries(self.settings.stream(table.schema, table.name)))
        finally:
            self.client.close()
        records = (decode(b, table.qualified) for b in bodies)
        yield from batches(fold(records, table).values(), table, columns)

    def entries(self, key: str) -> Iterator[bytes]:
        """The ``record`` field of every entry of stream ``key``, in order."""
        start = "-"
        while True:
            page = guarded(self.url, lambda s=start: self.client.xrange(key, s, "+", count=PAGE))
            for _, fields in page:
                yield fields[b"record"]
            if len(page) < PAGE:
                return
            start = "(" + page[-1][0].decode("ascii")
