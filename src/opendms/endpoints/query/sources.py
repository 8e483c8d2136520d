"""Endpoints as federated queries read them: one :class:`QuerySource` per endpoint.

An engine gives its own (:meth:`~opendms.endpoints.engine.Engine.query_source`: the
lake folds its files, DynamoDB asks ``Query`` or ``Scan``); an engine with a
:class:`~opendms.endpoints.engine.QueryDialect` is read by :class:`SqlSource` through
its own :meth:`Source.read <opendms.endpoints.base.Source.read>`, with the predicates it
accepts in the statement's WHERE; any other source engine is read whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from opendms.endpoints import engine_for
from opendms.endpoints.base import EndpointURL, Source
from opendms.endpoints.engine import QueryDialect, SqlReadSource
from opendms.endpoints.query.plan import Scan, TableName
from opendms.endpoints.query.predicates import Predicate, accepts, to_sql
from opendms.errors import ConfigError
from opendms.model import Kind, ReadPlan, Table, TableRef

__all__ = [
    "QuerySource",
    "Request",
    "SourceOptions",
    "SqlSource",
    "find_ref",
    "find_table",
    "limit_of",
    "open_query_source",
    "read_columns",
    "split",
]


@dataclass(frozen=True)
class SourceOptions:
    """What a query tells its sources beyond the URL: ``keys`` of lake tables by
    ``schema.table`` (the columns their CDC files are folded by)."""

    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """What one scan asks its source: the columns, the predicates it applies
    (``pushed``; the others only DuckDB does), the row ``limit`` it stops at, and
    ``text``, what ``--explain`` prints (the SQL sent, the DynamoDB call). ``payload``
    is the source's own (a ReadPlan, DynamoDB arguments); ``calls`` counts the API
    calls of reading it by operation."""

    scan: Scan
    table: Table
    columns: tuple[str, ...]
    pushed: tuple[Predicate, ...]
    limit: int | None
    text: str
    payload: Any = None
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> tuple[Predicate, ...]:
        """The scan's predicates this source does not apply."""
        return tuple(p for p in self.scan.predicates if p not in self.pushed and not p.derived)


class QuerySource(Protocol):
    """One endpoint as a federated query reads it."""

    def describe(self, name: TableName) -> Table:
        """Table ``name``; a :class:`ConfigError` naming it when the endpoint has none."""
        ...

    def request(self, scan: Scan, table: Table) -> Request:
        """What reading ``scan`` of ``table`` asks (no I/O beyond the catalog)."""
        ...

    def read(self, request: Request) -> Iterator[pa.RecordBatch]:
        """The rows of ``request`` (its columns, in the table's canonical Arrow types)."""
        ...

    def close(self) -> None: ...


def open_query_source(url: str, options: SourceOptions) -> QuerySource:
    """The query source of endpoint ``url``."""
    parsed = EndpointURL.parse(url)
    engine = engine_for(parsed)
    own: QuerySource | None = engine.query_source(parsed, options)
    if own is not None:
        return own
    if not engine.capabilities.source:
        raise ConfigError(f"{parsed}: {parsed.scheme}:// endpoints cannot be queried")
    return SqlSource(engine.open_source(parsed, {}), engine.query_dialect())


def find_table(source: Source, name: TableName) -> Table:
    """Table ``name`` of an open source, described."""
    return source.describe(find_ref(source, name))


def find_ref(source: Source, name: TableName) -> TableRef:
    """Table ``name`` of an open source (found as its engine resolves names), or a
    :class:`ConfigError` naming it."""
    url = source.url
    identity = engine_for(url).table_identity
    wanted = identity(url, name.schema, name.table)
    if name.changes:
        raise ConfigError(f"table {name}: only lake tables have a $changes log")
    for ref in [*source.list_tables(), *source.list_views()]:
        if identity(url, ref.schema, ref.name) == wanted:
            return TableRef(ref.schema, ref.name)
    raise ConfigError(f"table {name} not found (endpoint {name.endpoint}: {url})")


def read_columns(scan: Scan, table: Table) -> tuple[str, ...]:
    """The columns to read for ``scan``: those it uses, or (``count(*)``) the first key
    column, else the first column, so rows still arrive."""
    names = [c.name for c in table.columns]
    used = tuple(c for c in scan.columns if c in names)
    if used:
        return used
    return tuple(table.primary_key or names)[:1]


def split(
    scan: Scan, table: Table, takes: Callable[[Predicate, Kind], bool]
) -> tuple[Predicate, ...]:
    """The scan's predicates a source ``takes`` for its column's kind."""
    kinds = {c.name: c.type.kind for c in table.columns}
    return tuple(p for p in scan.predicates if p.column in kinds and takes(p, kinds[p.column]))


def limit_of(scan: Scan, pushed: tuple[Predicate, ...]) -> int | None:
    """The scan's limit when the source applies its whole WHERE."""
    return scan.limit if scan.complete and len(pushed) == len(scan.predicates) else None


class SqlSource:
    """A database endpoint read through its engine's source: the predicates its
    :class:`QueryDialect` accepts go into the SELECT it sends, with the LIMIT when
    that is the whole query (no dialect: the table's columns are read whole)."""

    def __init__(self, source: Source, dialect: QueryDialect | None) -> None:
        self.source, self.dialect = source, dialect

    def describe(self, name: TableName) -> Table:
        return find_table(self.source, name)

    def request(self, scan: Scan, table: Table) -> Request:
        dialect = self.dialect
        pushed: tuple[Predicate, ...] = ()
        if dialect is not None:
            pushed = split(
                scan, table, lambda p, k: accepts(p, k, dialect.kinds, dialect.null_kinds)
            )
        where = tuple(to_sql(p, dialect.sqlglot) for p in pushed) if dialect else ()
        limit = limit_of(scan, pushed)
        plan = ReadPlan(table, read_columns(scan, table), where=where, limit=limit)
        text = self.source.read_sql(plan) if isinstance(self.source, SqlReadSource) else ""
        text = text or f"read {table.qualified} ({', '.join(plan.columns)})"
        return Request(scan, table, plan.columns, pushed, limit, text, plan)

    def read(self, request: Request) -> Iterator[pa.RecordBatch]:
        yield from self.source.read(request.payload, None)

    def close(self) -> None:
        self.source.close()
