"""DynamoDB source: tables listed by ``ListTables`` and described by ``DescribeTable`` plus
a sample of items (:mod:`.infer`), rows read by parallel ``Scan`` segments (:mod:`.scan`)
and decoded exactly (:mod:`.decode`).

Every table is listed in the schema :data:`SCHEMA` (``dynamodb``): DynamoDB has no schemas,
and selection rules need one. ``snapshot()`` hands out none: a ``Scan`` is not a
consistent view, so a full load with CDC replays the table's stream from before the
scan began (:mod:`.changesource`), idempotently. Source filters are applied to the
decoded rows (a ``Scan`` reads every item either way)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

import pyarrow as pa

from opendms.arrowutil import with_rejections
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.dynamodb.calls import call
from opendms.endpoints.dynamodb.client import DynamoClients
from opendms.endpoints.dynamodb.decode import DOC, Item, MismatchError, attribute, canonical
from opendms.endpoints.dynamodb.infer import table_of
from opendms.endpoints.dynamodb.scan import ScanSpec, pages, scan_pages
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.errors import ConfigError
from opendms.model import ColumnType, ReadPlan, Table, TableRef, arrow_type

__all__ = ["SCHEMA", "DynamoSource", "open_source"]

log = logging.getLogger("opendms.dynamodb.source")

SCHEMA = "dynamodb"


def open_source(url: EndpointURL, settings: DynamoSettings) -> DynamoSource:
    return DynamoSource(url, settings)


class DynamoSource:
    """Reads the tables of one DynamoDB endpoint (an account and region, or a server)."""

    def __init__(self, url: EndpointURL, settings: DynamoSettings) -> None:
        self.url = url
        self.settings = settings
        self.clients = DynamoClients(url, pool=max(32, 2 * settings.ScanSegments))

    @property
    def where(self) -> str:
        return str(self.url)

    def list_tables(self) -> list[TableRef]:
        names: list[str] = []
        args: dict[str, Any] = {}
        while True:
            page = call(self.where, "", self.clients.dynamodb().list_tables, **args)
            names += page.get("TableNames", [])
            if not page.get("LastEvaluatedTableName"):
                return [TableRef(SCHEMA, name) for name in names]
            args["ExclusiveStartTableName"] = page["LastEvaluatedTableName"]

    def list_views(self) -> list[TableRef]:
        return []

    def description(self, name: str) -> dict[str, Any]:
        """``DescribeTable`` of ``name`` (its ``Table``)."""
        found = call(self.where, name, self.clients.dynamodb().describe_table, TableName=name)
        table: dict[str, Any] = found["Table"]
        return table

    def describe(self, ref: TableRef) -> Table:
        sample = self.sample(ref.name, self.settings.SampleItems)
        return table_of(SCHEMA, self.description(ref.name), sample)

    def sample(self, name: str, count: int) -> list[Item]:
        """The first ``count`` items a plain ``Scan`` returns."""
        if count <= 0:
            return []
        spec = ScanSpec(self.clients.dynamodb(), self.where, name, limit=min(count, 1000))
        items: list[Item] = []
        for page in pages(spec, 0):
            items += page
            if len(items) >= count:
                break
        return items[:count]

    @contextmanager
    def snapshot(self) -> Iterator[str | None]:
        yield None

    def snapshot_alive(self, snapshot: str) -> bool:
        return True  # no snapshot is ever handed out

    def read(self, plan: ReadPlan, snapshot: str | None) -> Iterator[pa.RecordBatch]:
        _check_segment(plan)
        spec = ScanSpec(
            self.clients.dynamodb(),
            self.where,
            plan.table.name,
            segments=max(1, self.settings.ScanSegments),
            limit=self.settings.ScanPageLimit,
            attributes=(*plan.columns, DOC),
        )
        items = (item for page in scan_pages(spec) for item in page)
        while chunk := list(islice(items, plan.batch_rows)):
            yield to_batch(plan, chunk)

    def close(self) -> None:
        pass


def _check_segment(plan: ReadPlan) -> None:
    if plan.segment is not None:
        raise ConfigError(
            f"table {plan.table.qualified}: a DynamoDB table is read by parallel Scan "
            "segments (endpoint setting ScanSegments); use parallel-load type 'none'",
            path="$.table_mappings",
        )


def to_batch(plan: ReadPlan, items: Sequence[Item]) -> pa.RecordBatch:
    """``items`` as a batch of the plan's columns (rows failing the plan's filters left
    out); a value that does not fit its column is NULL and its row reported."""
    from opendms.mapping.rowfilter import passes

    types = [plan.table.column(c).type for c in plan.columns]
    rows: list[dict[str, Any]] = []
    rejected: list[tuple[int, str, str]] = []
    for item in items:
        row = _row(plan.columns, types, item, len(rows), rejected)
        if not plan.filters or passes(plan.filters, row, plan.table):
            rows.append(row)
        elif rejected and rejected[-1][0] == len(rows):
            rejected = [r for r in rejected if r[0] != len(rows)]
    arrays = [
        pa.array([r[c] for r in rows], arrow_type(t))
        for c, t in zip(plan.columns, types, strict=True)
    ]
    batch = pa.RecordBatch.from_arrays(arrays, names=list(plan.columns))
    return with_rejections(batch, rejected)


def _row(
    columns: tuple[str, ...],
    types: list[ColumnType],
    item: Item,
    index: int,
    rejected: list[tuple[int, str, str]],
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name, ctype in zip(columns, types, strict=True):
        try:
            row[name] = canonical(attribute(item, name), ctype)
        except MismatchError as exc:
            row[name] = None
            rejected.append((index, name, str(exc)))
    return row
