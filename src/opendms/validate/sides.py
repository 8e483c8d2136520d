"""The two sides of a table validation and how their rows are read.

A database side (PostgreSQL, MySQL/MariaDB, SQLite, source or target) is read through
the engine's own :meth:`Source.read`, so values arrive in the canonical Arrow form;
a target that cannot be opened as a source (a lake) is read back whole through its
engine's :class:`~opendms.endpoints.readback.TableRows`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pyarrow as pa

from opendms.endpoints import engine_for, table_identity
from opendms.endpoints.base import EndpointURL, Source
from opendms.endpoints.readback import TableRows, check_columns
from opendms.errors import EndpointError
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


def rows_side(rows: TableRows, table: Table, columns: tuple[str, ...]) -> Side:
    """Rows of a target table that is read back whole (a lake's files replayed): the
    engine's :class:`~opendms.endpoints.readback.TableRows` checks its columns."""

    def batches(extra: tuple[FilterGroup, ...]) -> Iterator[pa.RecordBatch]:
        yield from rows.batches(table, columns)

    return Side(table, columns, batches, pushdown=False)


__all__ = ["Side", "check_columns", "database_side", "find_table", "rows_side", "target_columns"]
