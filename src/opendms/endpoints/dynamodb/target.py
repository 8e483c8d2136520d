"""The DynamoDB full-load target: tables prepared by ``TargetTablePrepMode``, rows
written as items (:mod:`.items`) with parallel ``BatchWriteItem`` calls.

A target table is the DynamoDB table ``<table_prefix><name>`` (the schema is not part of
a DynamoDB name; ``table_prefix`` is a URL parameter). ``prepare`` creates a missing
table (key from the object mapping, or the primary key); ``DROP_AND_CREATE`` deletes
and creates it, ``TRUNCATE_BEFORE_LOAD`` deletes its items by key (scan-and-delete,
``BatchWriteItem``), ``DO_NOTHING`` keeps it. An existing table whose key differs from
the mapping's is an error.

A writer cuts each batch into ``BatchWriteItem`` calls of at most 25 puts (rows with one
key in a batch: the last wins), ``BatchWriteThreads`` calls in flight, resending
``UnprocessedItems`` with back-off. A table whose object mapping has a
``condition-expression`` that applies during the full load is written one ``PutItem``
per row with the condition instead (a failed condition skips the row).
Rows that cannot be items (a number of more than 38 digits, NaN, an item over 400 KB)
are data errors: :meth:`DynamoTarget.reject` names them, the task's
``DataErrorPolicy`` decides.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection
from opendms.endpoints.dynamodb.client import DynamoClients
from opendms.endpoints.dynamodb.codec import CodecError
from opendms.endpoints.dynamodb.items import Item, ItemShape
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.endpoints.dynamodb.tables import BATCH_LIMIT, Tables
from opendms.errors import DataError, EndpointError
from opendms.mapping.objectmap import ObjectMappingRule
from opendms.model import Table

__all__ = ["DynamoTarget", "DynamoWriter", "key_text", "open_target"]

log = logging.getLogger("opendms.dynamodb")

Mappings = dict[tuple[str, str], ObjectMappingRule | None]


def key_text(key: Item) -> str:
    """A key's AttributeValues as text (to compare and group keys)."""
    return json.dumps(key, sort_keys=True, default=lambda b: bytes(b).hex())


def open_target(url: EndpointURL, settings: DynamoSettings) -> DynamoTarget:
    return DynamoTarget(url, settings)


class DynamoTarget:
    """The tables of one DynamoDB endpoint as a full-load target."""

    def __init__(self, url: EndpointURL, settings: DynamoSettings) -> None:
        self.url, self.settings = url, settings
        self.clients = DynamoClients(url, pool=max(32, settings.BatchWriteThreads * 32))
        self.tables = Tables(self.clients, settings)
        self.prefix = url.query.get("table_prefix", "")
        self.mappings: Mappings = {}
        self._shapes: dict[Table, ItemShape] = {}

    # -- object mappings (ObjectMappingTarget) -----------------------------------

    def set_object_mappings(self, mappings: Mappings, quiet: bool = False) -> None:
        self.mappings.update(mappings)
        self._shapes.clear()

    def name(self, table: Table) -> str:
        """The DynamoDB table name of target table ``table``."""
        return f"{self.prefix}{table.name}"

    def shape(self, table: Table) -> ItemShape:
        found = self._shapes.get(table)
        if found is None:
            rule = self.mappings.get((table.schema, table.name))
            found = self._shapes[table] = ItemShape(table, rule)
        return found

    # -- Target ------------------------------------------------------------------

    def prepare(self, table: Table, mode: PrepMode) -> None:
        shape = self.shape(table)
        name = self.name(table)
        keys = self.tables.key_names(name)
        if keys is not None and mode is PrepMode.DROP_AND_CREATE:
            self.tables.delete(name)
            keys = None
        if keys is None:
            self.tables.create(name, shape.key)
            log.info("table %s: created DynamoDB table %s", table.qualified, name)
            return
        if keys != shape.key_names:
            raise EndpointError(
                str(self.url),
                f"table {name} exists with key ({', '.join(keys)}); its mapping needs "
                f"({', '.join(shape.key_names)}): drop it or use DROP_AND_CREATE",
            )
        if mode is PrepMode.TRUNCATE_BEFORE_LOAD:
            count = self.tables.truncate(name)
            log.info("table %s: %d items deleted from %s", table.qualified, count, name)

    def writer(self, table: Table, segment: int | str | None) -> DynamoWriter:
        return DynamoWriter(self, table)

    def finish(self, table: Table) -> None:
        """No indexes to build."""

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        shape = self.shape(table)
        out = []
        for i, row in enumerate(batch.to_pylist()):
            try:
                shape.item(row)
            except CodecError as exc:
                out.append(Rejection(i, exc.column or "(item)", str(exc)))
        return out

    def drop_table(self, table: Table) -> None:
        self.tables.delete(self.name(table))

    def rename_table(self, old: Table, new: Table) -> None:
        """DynamoDB cannot rename a table: the new name gets a new table; the items of
        the old one stay where they are (a warning says so)."""
        log.warning(
            "table %s renamed to %s: DynamoDB tables cannot be renamed; %s keeps its items "
            "and changes go to %s from now on",
            old.qualified,
            new.qualified,
            self.name(old),
            self.name(new),
        )
        self.prepare(new, PrepMode.DO_NOTHING)

    def close(self) -> None:
        """boto3 clients hold nothing that must be closed."""


class DynamoWriter:
    """Writes the batches of one table: ``BatchWriteItem`` calls of 25 puts in parallel."""

    def __init__(self, target: DynamoTarget, table: Table) -> None:
        self.target, self.table = target, table
        self.shape = target.shape(table)
        self.name = target.name(table)
        rule = self.shape.rule
        self.condition = rule.condition if rule and rule.condition else None
        if self.condition is not None and not self.condition.during_full_load:
            self.condition = None
        self.pool = ThreadPoolExecutor(target.settings.BatchWriteThreads, f"ddb-{table.name}")
        self.rows = 0
        self.skipped = 0

    def write(self, batch: pa.RecordBatch) -> None:
        items = self._items(batch)
        if self.condition is not None:
            calls = [self.pool.submit(self._put, item) for item in items]
        else:
            chunks = [items[i : i + BATCH_LIMIT] for i in range(0, len(items), BATCH_LIMIT)]
            calls = [self.pool.submit(self._batch, chunk) for chunk in chunks]
        for call in calls:
            call.result()
        self.rows += batch.num_rows

    def _items(self, batch: pa.RecordBatch) -> list[Item]:
        """The batch's items, one per key (the last row of a key wins)."""
        by_key: dict[str, Item] = {}
        for row in batch.to_pylist():
            try:
                item = self.shape.item(row)
            except CodecError as exc:
                raise DataError(self.table.qualified, f"column {exc.column}: {exc}") from None
            by_key[key_text(self.shape.key_of(item))] = item
        return list(by_key.values())

    def _batch(self, items: list[Item]) -> None:
        self.target.tables.batch_write(self.name, [{"PutRequest": {"Item": i}} for i in items])

    def _put(self, item: Item) -> None:
        assert self.condition is not None
        args: dict[str, Any] = {"TableName": self.name, "Item": item}
        if not self.target.tables.conditional("put_item", **args, **self.condition.call_args()):
            self.skipped += 1

    def close(self) -> int:
        self.pool.shutdown()
        if self.skipped:
            log.info(
                "table %s: %d rows not written: their condition-expression was false",
                self.table.qualified,
                self.skipped,
            )
        return self.rows - self.skipped

    def abort(self) -> None:
        """Items written stay (a reload prepares the table again)."""
        self.pool.shutdown(cancel_futures=True)
