"""A lake target's tables read back for validation: its LOAD and CDC files replayed to
the rows they stand for (:func:`opendms.endpoints.lake.replay.replay`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.lake.replay import UnmatchedChangeError, replay
from opendms.endpoints.lake.settings import URL_KEYS, LakeSettings, lake_settings
from opendms.endpoints.lake.storage import Storage, open_storage
from opendms.endpoints.readback import check_columns
from opendms.errors import EndpointError, NotComparableError
from opendms.model import Table

BATCH_ROWS = 65536


class LakeRows:
    """:class:`~opendms.endpoints.readback.TableRows` of a lake: each table replayed whole."""

    def __init__(self, url: EndpointURL, settings: dict[str, Any]) -> None:
        keys = {k.lower() for k in URL_KEYS}
        query = {k: v for k, v in url.query.items() if k.lower() not in keys}
        self.url, self.settings = url, settings
        self.options: LakeSettings = lake_settings({**query, **settings})

    def batches(self, table: Table, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        if self.options.PreserveTransactions:
            raise NotComparableError(
                table.qualified, "its changes are in transaction files (PreserveTransactions)"
            )
        rows = self._replayed(table)
        if rows:
            found = dict.fromkeys(name for row in _distinct_shapes(rows) for name in row)
            expected = tuple(c.name for c in table.columns)
            check_columns(table.qualified, expected, list(found))
        schema = pa.schema([table.arrow_schema().field(c) for c in columns])
        data = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema)
        yield from data.to_batches(BATCH_ROWS)

    def _replayed(self, table: Table) -> list[dict[str, Any]]:
        try:
            return replay_rows(self.url, open_storage(self.url, self.settings), self.options, table)
        except UnmatchedChangeError as exc:
            raise NotComparableError(table.qualified, f"{exc}; not validated") from exc


def replay_rows(
    url: EndpointURL, storage: Storage, settings: LakeSettings, table: Table
) -> list[dict[str, Any]]:
    """The rows of lake table ``table`` (folded by its primary key) in its canonical
    values; files that cannot be read are an EndpointError, a change that matches no row
    of a table without a key an :class:`UnmatchedChangeError`."""
    try:
        return replay(
            storage, table.schema, table.name, table.primary_key, settings=settings, model=table
        )
    except (OSError, ValueError, pa.ArrowException) as exc:
        if isinstance(exc, UnmatchedChangeError):
            raise
        raise EndpointError(str(url), f"cannot read lake table {table.qualified}: {exc}") from exc


def _distinct_shapes(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The distinct column lists of replayed rows (files of one table may differ)."""
    return sorted({tuple(row) for row in rows})
