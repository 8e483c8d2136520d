"""Reading DynamoDB tables back for validation (:class:`opendms.endpoints.readback.TableRows`).

A table is scanned whole (consistent reads); a column's value is the top-level attribute
of its name, else the entry of that name in the ``_doc`` map, decoded to the column's
canonical type (:func:`.codec.decode`); no attribute is NULL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.dynamodb.client import DynamoClients
from opendms.endpoints.dynamodb.codec import CodecError, decode
from opendms.endpoints.dynamodb.settings import DynamoSettings
from opendms.endpoints.dynamodb.tables import Tables
from opendms.errors import EndpointError, NotComparableError
from opendms.mapping.objectmap import DOC_ATTRIBUTE
from opendms.model import Table, arrow_type

__all__ = ["DynamoRows"]

BATCH_ROWS = 10000


class DynamoRows:
    """The tables of one DynamoDB endpoint, read whole."""

    def __init__(self, url: EndpointURL, settings: DynamoSettings) -> None:
        self.tables = Tables(DynamoClients(url), settings)
        self.prefix = url.query.get("table_prefix", "")

    def batches(self, table: Table, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        name = f"{self.prefix}{table.name}"
        if self.tables.describe(name) is None:
            raise EndpointError(self.tables.where, f"DynamoDB table {name} does not exist")
        rows: list[dict[str, Any]] = []
        for item in self.tables.scan(name):
            rows.append(self._row(table, columns, item))
            if len(rows) == BATCH_ROWS:
                yield _batch(table, columns, rows)
                rows = []
        yield _batch(table, columns, rows)  # the rest (an empty table: one empty batch)

    def _row(self, table: Table, columns: tuple[str, ...], item: dict[str, Any]) -> dict[str, Any]:
        doc = item.get(DOC_ATTRIBUTE, {}).get("M", {})
        out = {}
        for name in columns:
            av = item.get(name, doc.get(name))
            try:
                out[name] = decode(table.column(name).type, av)
            except (CodecError, ValueError) as exc:
                raise NotComparableError(table.qualified, f"attribute {name}: {exc}") from None
        return out


def _batch(table: Table, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> pa.RecordBatch:
    types = [arrow_type(table.column(n).type) for n in columns]
    arrays = [pa.array([r[n] for r in rows], t) for n, t in zip(columns, types, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, names=list(columns))
