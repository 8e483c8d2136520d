"""The full-load target and the read-back of a ``nats://`` endpoint."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection
from opendms.endpoints.brokerrecords import (
    batches,
    decode,
    fold,
    load_records,
    truncate_record,
)
from opendms.endpoints.natsjs.bodies import RecordIds, body
from opendms.endpoints.natsjs.client import JetStream, Message
from opendms.endpoints.natsjs.engine import Names, connect
from opendms.envelope import ChangeRecord
from opendms.model import Table

CHUNK = 256
"""Messages encoded at a time while the loop publishes the chunk before."""


class NatsTarget:
    """Publishes full-load rows as ``I`` records; holds the connection CDC uses too."""

    def __init__(self, url: EndpointURL, names: Names, conn: JetStream) -> None:
        self.url, self.names, self.settings, self.conn = url, names, names.settings, conn

    def messages(self, records: Iterable[ChangeRecord], ids: bool) -> Iterator[list[Message]]:
        """``records`` as messages in chunks of :data:`CHUNK` (``ids``: with their record
        id as ``Nats-Msg-Id``), made as the loop publishes the chunk before."""
        fmt, subject, id_of = self.settings.MessageFormat, self.names.subject, RecordIds()
        chunk: list[Message] = []
        for r in records:
            chunk.append((subject(r.schema, r.table), body(r, fmt), id_of(r) if ids else None))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def publish(self, records: Iterable[ChangeRecord], ids: bool) -> int:
        """Publish ``records`` and wait for their acks; how many were duplicates."""
        return self.conn.publish(self.messages(records, ids))

    def prepare(self, table: Table, mode: PrepMode) -> None:
        if mode is not PrepMode.DO_NOTHING:
            self.publish([truncate_record(table)], ids=False)

    def writer(self, table: Table, segment: int | str | None) -> NatsWriter:
        return NatsWriter(self, table)

    def finish(self, table: Table) -> None:
        """No indexes to build."""

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        return []  # every canonical value has a JSON form in a change record

    def drop_table(self, table: Table) -> None:
        self.publish([truncate_record(table)], ids=False)

    def rename_table(self, old: Table, new: Table) -> None:
        """Subjects are not renamed: later records go to the new table's subject."""

    def close(self) -> None:
        self.conn.close()


class NatsWriter:
    """Publishes the batches of one table's load."""

    def __init__(self, target: NatsTarget, table: Table) -> None:
        self.target, self.table, self.rows = target, table, 0

    def write(self, batch: pa.RecordBatch) -> None:
        self.target.publish(load_records(self.table, batch, self.rows), ids=False)
        self.rows += batch.num_rows

    def close(self) -> int:
        return self.rows

    def abort(self) -> None:
        """Published rows stay (a reload sends a ``T`` record first)."""


class NatsRows:
    """Reads a table back by folding its subject's records (validation, conformance)."""

    def __init__(self, url: EndpointURL, names: Names) -> None:
        self.url, self.names = url, names

    def batches(self, table: Table, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        conn = connect(self.url, self.names.settings)
        try:
            subject = self.names.subject(table.schema, table.name)
            bodies = list(conn.read(self.names.stream(), subject))
        finally:
            conn.close()
        records = (decode(b, table.qualified) for b in bodies)
        yield from batches(fold(records, table).values(), table, columns)
