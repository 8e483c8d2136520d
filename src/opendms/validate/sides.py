"""The two sides of a table validation and how their rows are read.

A database side (PostgreSQL, MySQL/MariaDB, SQLite, source or target) is read through
the engine's own :meth:`Source.read`, so values arrive in the canonical Arrow form;
a lake target is read back by replaying its LOAD and CDC files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from opendms.endpoints import engine_for, table_identity
from opendms.endpoints.base import EndpointURL, Source
from opendms.errors import EndpointError, NotComparableError
from opendms.model import ColumnType, FilterGroup, ReadPlan, Table

# Reads the side's rows; the filter groups narrow the read where the side can push them
# down (a lake side reads everything).
Batches = Callable[[tuple[FilterGroup, ...]], Iterator[pa.RecordBatch]]
BATCH_ROWS = 65536


@dataclass(frozen=True)
class Side:
    """One side of a table: its described table, the compared columns (in that side's
    names, aligned with the other side's) and a way to read them, again and again."""

    table: Table
    columns: tuple[str, ...]
    batches: Batches
    pushdown: bool = True  # whether ``batches`` applies the filters it is given
    url: EndpointURL | None = None  # a database side's endpoint (for checksum queries)
    filtered: bool = False  # the side reads through source filters

    def restricted(self, groups: list[tuple[FilterGroup, ...]]) -> Side:
        """This side, reading only the rows of any of the filter sets in ``groups``."""

        def batches(extra: tuple[FilterGroup, ...]) -> Iterator[pa.RecordBatch]:
            for group in groups:
                yield from self.batches(group + extra)

        return replace(self, batches=batches)

    def types(self) -> list[ColumnType]:
        return [self.table.column(c).type for c in self.columns]


def database_side(
    source: Source, table: Table, columns: tuple[str, ...], filters: tuple[FilterGroup, ...] = ()
) -> Side:
    """Rows of ``table`` read through an open endpoint, each pass under its own snapshot."""

    def batches(extra: tuple[FilterGroup, ...]) -> Iterator[pa.RecordBatch]:
        plan = ReadPlan(table, columns, filters + extra, None, BATCH_ROWS)
        with source.snapshot() as snap:
            yield from source.read(plan, snap)

    return Side(table, columns, batches, url=source.url, filtered=bool(filters))


def find_table(source: Source, schema: str, name: str) -> Table:
    """The target table ``schema.name`` as the target endpoint describes it."""
    url = source.url
    wanted = table_identity(url, schema, name)
    for ref in source.list_tables():
        if table_identity(url, ref.schema, ref.name) == wanted:
            return source.describe(ref)
    raise EndpointError(str(url), f"target table {schema}.{name} does not exist")


# Engines whose column names are case-insensitive (a column is found whatever its case).


def target_columns(
    url: EndpointURL, table: Table, compared: tuple[str, ...], expected: tuple[str, ...]
) -> tuple[str, ...]:
    """The names ``table`` (the target as it is) gives the ``compared`` columns.

    ``expected`` are all the columns the task gives the target table; a column missing
    on the target or one the target has in addition is a :class:`NotComparableError`
    naming them (column names compared as the target engine does)."""
    norm = str.casefold if engine_for(url).folds_names else str
    actual = {norm(c.name): c.name for c in table.columns}
    check_columns(table.qualified, expected, [c.name for c in table.columns], norm)
    return tuple(actual[norm(c)] for c in compared)


def check_columns(
    table: str, expected: tuple[str, ...], actual: list[str], norm: Callable[[str], str] = str
) -> None:
    """Raise :class:`NotComparableError` when the target's ``actual`` columns are not the
    ``expected`` ones, naming those missing on the target and those in addition."""
    have = {norm(c) for c in actual}
    wanted = {norm(c) for c in expected}
    missing = [c for c in expected if norm(c) not in have]
    extra = [c for c in actual if norm(c) not in wanted]
    if not (missing or extra):
        return
    parts = [f"missing on target: {', '.join(missing)}"] if missing else []
    parts += [f"extra on target: {', '.join(extra)}"] if extra else []
    message = f"source and target columns differ ({'; '.join(parts)}); not validated"
    raise NotComparableError(table, message)


def lake_side(
    url: EndpointURL, settings: dict[str, Any], table: Table, columns: tuple[str, ...]
) -> Side:
    """Rows of a lake table after replaying its LOAD and CDC files; the files' columns
    must be the table's (:func:`check_columns`)."""
    from opendms.endpoints.lake.replay import UnmatchedChangeError, replay
    from opendms.endpoints.lake.settings import lake_settings
    from opendms.endpoints.lake.storage import open_storage

    query = {k: v for k, v in url.query.items() if k.lower() not in _url_keys()}
    options = lake_settings({**query, **settings})
    if options.PreserveTransactions:
        raise NotComparableError(
            table.qualified, "its changes are in transaction files (PreserveTransactions)"
        )
    storage = open_storage(url, settings)

    def batches(extra: tuple[FilterGroup, ...]) -> Iterator[pa.RecordBatch]:
        try:
            rows = replay(
                storage, table.schema, table.name, table.primary_key, settings=options, model=table
            )
        except UnmatchedChangeError as exc:
            raise NotComparableError(table.qualified, f"{exc}; not validated") from exc
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise EndpointError(
                str(url), f"cannot read lake table {table.qualified}: {exc}"
            ) from exc
        if rows:
            found = dict.fromkeys(name for row in _distinct_shapes(rows) for name in row)
            expected = tuple(c.name for c in table.columns)
            check_columns(table.qualified, expected, list(found))
        schema = pa.schema([table.arrow_schema().field(c) for c in columns])
        data = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema)
        yield from data.to_batches(BATCH_ROWS)

    return Side(table, columns, batches, pushdown=False)


def _distinct_shapes(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The distinct column lists of replayed rows (files of one table may differ)."""
    return sorted({tuple(row) for row in rows})


def _url_keys() -> frozenset[str]:
    from opendms.endpoints.lake.settings import URL_KEYS

    return frozenset(k.lower() for k in URL_KEYS)


__all__ = ["Side", "check_columns", "database_side", "find_table", "lake_side", "target_columns"]
