"""Reading a target table back and comparing it with what was written, by canonical type.

Rows are written from :data:`TABLE` (every canonical type, reused from the CDC apply
tests). An engine that is a source is read through its own source, another target by its
engine's ``table_rows``; a lake through the
independent lake reader (:mod:`tests.oracles.lake`). Values are compared in canonical
Python form (:func:`tests.integration.readback.norm`); a column whose values differ
must be one the engine reports as lossy (:meth:`Engine.lossy`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from opendms.endpoints import open_source
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.engine import Engine
from opendms.model import ColumnType, Kind, ReadPlan, Table, arrow_type
from tests.integration.readback import norm
from tests.integration.test_apply_targets import ITEMS as TABLE
from tests.integration.test_apply_targets import SCHEMA
from tests.oracles.lake import read_lake
from tests.oracles.rows import time_of_day

__all__ = ["SCHEMA", "TABLE", "batch_of", "canonical_rows", "read_back", "unreported_changes"]

Row = dict[str, Any]


_CSV_TEXT: dict[Kind, Callable[[str], Any]] = {Kind.BOOL: lambda text: text == "true"}
"""CSV lake text that :func:`norm` does not read by itself (the rest it parses)."""


def batch_of(table: Table, rows: list[Row]) -> pa.RecordBatch:
    """``rows`` as one Arrow batch of ``table``'s canonical types (source-independent)."""
    arrays = [pa.array([r.get(c.name) for r in rows], arrow_type(c.type)) for c in table.columns]
    return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in table.columns])


def read_back(engine: Engine, url: str, table: Table, lenient: bool = False) -> list[Row]:
    """Every row of ``table`` on the target ``url``, ordered by its key (``lenient``: a
    lake may hold changes twice, as after an idempotent catch-up)."""
    key = table.column(table.primary_key[0]).type.kind
    caps = engine.capabilities
    if not caps.records_changes and (engine.reads_back_whole or not caps.source):
        rows = _table_rows(engine, url, table)
        return sorted(rows, key=lambda r: norm(r[table.primary_key[0]], key))
    if engine.capabilities.records_changes:
        names = [c.name for c in table.columns]
        parse = {c.name: _CSV_TEXT[c.type.kind] for c in table.columns if c.type.kind in _CSV_TEXT}
        lake = read_lake(url, keys=table.primary_key, lenient=lenient, columns=names, parse=parse)
        rows = lake[f"{table.schema}.{table.name}"].rows
        return sorted(rows, key=lambda r: norm(r[table.primary_key[0]], key))
    source = open_source(url)
    try:
        ref = next(r for r in source.list_tables() if r.name.casefold() == table.name.casefold())
        found = source.describe(ref)
        plan = ReadPlan(found, tuple(c.name for c in found.columns))
        rows = pa.Table.from_batches(list(source.read(plan, None))).to_pylist()
    finally:
        source.close()
    return sorted(rows, key=lambda r: norm(r[table.primary_key[0]], key))


def _table_rows(engine: Engine, url: str, table: Table) -> list[Row]:
    """A target that is not a lake and is read back by its engine's own ``table_rows``
    (not a source, or written in another shape than it reads as one)."""
    reader = engine.table_rows(EndpointURL.parse(url), {})
    assert reader is not None, f"{engine.name} declares read_back without table_rows"
    names = tuple(c.name for c in table.columns)
    return pa.Table.from_batches(list(reader.batches(table, names))).to_pylist()


def unreported_changes(engine: Engine, table: Table, got: list[Row], want: list[Row]) -> list[str]:
    """Columns whose values came back changed although ``engine.lossy`` says nothing of
    their type (each with the first differing pair); the rows' keys must be the same."""
    key = table.column(table.primary_key[0])
    keys = [[_canonical(r[key.name], key.type.kind, None) for r in rows] for rows in (got, want)]
    assert keys[0] == keys[1], keys
    out = []
    for col in table.columns:
        differ = _first_difference(
            col.type, [g.get(col.name) for g in got], [w.get(col.name) for w in want]
        )
        if differ and engine.lossy(col.type) is None:
            out.append(f"{col.name} ({col.type}): got {differ[0]!r}, wrote {differ[1]!r}")
    return out


def _first_difference(ctype: ColumnType, got: list[Any], want: list[Any]) -> tuple[Any, Any] | None:
    """The first (read, written) pair of one column's values that differ in canonical form."""
    element = ctype.element.kind if ctype.element else None
    for g, w in zip(got, want, strict=True):
        pair = _canonical(g, ctype.kind, element), _canonical(w, ctype.kind, element)
        if pair[0] != pair[1]:
            return pair
    return None


def canonical_rows(rows: list[Row], kinds: dict[str, tuple[Kind, Kind | None]]) -> list[Row]:
    """``rows`` in canonical Python form, by the kind (and element kind) of each column."""
    return [{n: _canonical(r.get(n), k, e) for n, (k, e) in kinds.items()} for r in rows]


def _canonical(value: Any, kind: Kind, element: Kind | None) -> Any:
    """:func:`norm`, with an Arrow interval (a named tuple norm keeps) in microseconds."""
    if isinstance(value, pa.MonthDayNano):
        value = (value.months, value.days, value.nanoseconds // 1000)
    if kind is Kind.TIME and isinstance(value, tuple):
        return time_of_day(value)  # a MySQL TIME reads as an interval (README "Types")
    return norm(value, kind, element)
