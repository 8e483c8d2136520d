"""Running a federated query: plan it (:mod:`opendms.endpoints.query.plan`), ask each
source for its rows (:mod:`opendms.endpoints.query.sources`, in parallel), hand them to
DuckDB as Arrow tables and run the query there, rewritten onto them.

Values keep the endpoints' canonical Arrow types (exact decimals, timestamps with their
zone in UTC, binary, JSON as text). Two kinds DuckDB cannot take as they come are
narrowed, exactly: unconstrained decimals (carried as text: PostgreSQL ``numeric``,
DynamoDB numbers) become the narrowest DECIMAL(p, s) that holds every value read (whole
numbers too: a decimal column stays a decimal) when they fit 38 digits, else stay text;
decimals wider than 38 digits are text.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from opendms.arrowutil import read_rejections
from opendms.endpoints.query.plan import Query, Scan, parse, plan
from opendms.endpoints.query.sources import QuerySource, Request, SourceOptions, open_query_source
from opendms.errors import ConfigError, OpenDMSError
from opendms.model import Kind, Table

__all__ = ["QueryOptions", "QueryResult", "SourceRead", "explain", "run_query"]

_READERS = 4


@dataclass(frozen=True)
class QueryOptions:
    """The endpoints a query names (``name -> URL``), the key columns of lake tables
    (``endpoint.schema.table -> columns``) and whether sources get predicates."""

    endpoints: Mapping[str, str]
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pushdown: bool = True
    """False: every source reads its whole table (all columns, no filter, no limit),
    what a scan without pushdown does: the answer is the same, for comparison."""


@dataclass
class SourceRead:
    """One scan's request and, once read, its rows and seconds."""

    request: Request
    endpoint: str
    rows: int = 0
    seconds: float = 0.0
    rejected: int = 0


@dataclass(frozen=True)
class QueryResult:
    """The answer, what each source was asked and read, and DuckDB's query."""

    table: pa.Table
    reads: list[SourceRead]
    sql: str
    seconds: float


@dataclass
class _Prepared:
    reads: list[SourceRead]
    sql: str
    sources: dict[str, QuerySource]


def explain(sql: str, options: QueryOptions) -> QueryResult:
    """What each source would be asked and the DuckDB query, without reading rows."""
    started = time.monotonic()
    with _prepared(sql, options) as prepared:
        empty = pa.table({})
        return QueryResult(empty, prepared.reads, prepared.sql, time.monotonic() - started)


def run_query(sql: str, options: QueryOptions) -> QueryResult:
    """Run ``sql`` over the endpoints of ``options``."""
    started = time.monotonic()
    with _prepared(sql, options) as prepared:
        tables = _read_all(prepared)
        answer = _duckdb(prepared, tables)
    return QueryResult(answer, prepared.reads, prepared.sql, time.monotonic() - started)


@contextlib.contextmanager
def _prepared(sql: str, options: QueryOptions) -> Iterator[_Prepared]:
    query = parse(sql)
    sources: dict[str, QuerySource] = {}
    try:
        for name in dict.fromkeys(t.endpoint for t in query.tables):
            sources[name] = _open(name, options)
        yield _plan(query, sources, options.pushdown)
    finally:
        for source in sources.values():
            with contextlib.suppress(Exception):
                source.close()


def _open(name: str, options: QueryOptions) -> QuerySource:
    url = options.endpoints.get(name)
    if url is None:
        known = ", ".join(sorted(options.endpoints)) or "none given"
        raise ConfigError(f"unknown endpoint {name!r} (--endpoint NAME=URL; known: {known})")
    prefix = f"{name}."
    keys = {k[len(prefix) :]: v for k, v in options.keys.items() if k.startswith(prefix)}
    return open_query_source(url, SourceOptions(keys))


def _plan(query: Query, sources: Mapping[str, QuerySource], pushdown: bool) -> _Prepared:
    described: dict[Any, Table] = {}
    for name in query.tables:
        if name not in described:
            described[name] = sources[name.endpoint].describe(name)
    tables = [described[n] for n in query.tables]
    scans, sql = plan(query, [[c.name for c in t.columns] for t in tables])
    for scan, table in zip(scans, tables, strict=True):
        if not pushdown:
            scan.predicates, scan.limit = (), None
            scan.columns = tuple(c.name for c in table.columns)
    reads = [_request(sources, scan, table) for scan, table in zip(scans, tables, strict=True)]
    return _Prepared(reads, sql, dict(sources))


def _request(sources: Mapping[str, QuerySource], scan: Scan, table: Table) -> SourceRead:
    return SourceRead(sources[scan.name.endpoint].request(scan, table), scan.name.endpoint)


def _read_all(prepared: _Prepared) -> list[pa.Table]:
    with ThreadPoolExecutor(max_workers=min(_READERS, len(prepared.reads) or 1)) as pool:
        futures = [pool.submit(_read, prepared.sources[r.endpoint], r) for r in prepared.reads]
        return [f.result() for f in futures]


def _read(source: QuerySource, read: SourceRead) -> pa.Table:
    started = time.monotonic()
    request = read.request
    schema = pa.schema([request.table.arrow_schema().field(c) for c in request.columns])
    batches = []
    for batch in source.read(request):
        read.rejected += len(read_rejections(batch))
        batches.append(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    data = pa.Table.from_batches(batches, schema=schema)
    read.rows, read.seconds = data.num_rows, time.monotonic() - started
    return narrowed(data, request.table)


def narrowed(data: pa.Table, table: Table) -> pa.Table:
    """``data`` with the decimals DuckDB cannot take as they are made exact types it
    takes (see the module docstring)."""
    columns = []
    for name, column in zip(data.column_names, data.columns, strict=True):
        kind = table.column(name).type.kind
        if kind is Kind.DECIMAL and pa.types.is_string(column.type):
            column = _exact_number(column)
        elif pa.types.is_decimal256(column.type):
            column = column.cast(pa.string())
        columns.append(column)
    return pa.table(columns, names=data.column_names)


def _exact_number(column: pa.ChunkedArray[Any]) -> pa.ChunkedArray[Any]:
    """An unconstrained decimal column (exact text) as the narrowest DECIMAL that holds
    every value, whole numbers too: a decimal stays a decimal whatever values it holds."""
    try:
        values = [None if v is None else Decimal(v) for v in column.to_pylist()]
    except InvalidOperation:
        return column
    finite = [v for v in values if v is not None and v.is_finite()]
    if len(finite) != len([v for v in values if v is not None]):
        return column  # NaN or infinity: no DECIMAL holds them
    exponents = [int(v.as_tuple().exponent) for v in finite]
    scale = max((max(0, -e) for e in exponents), default=0)
    whole = max(
        (max(0, len(v.as_tuple().digits) + e) for v, e in zip(finite, exponents, strict=True)),
        default=0,
    )
    precision = max(whole + scale, 1)
    if precision > 38:
        return column
    return pa.chunked_array([pa.array(values, pa.decimal128(precision, scale))])


def _duckdb(prepared: _Prepared, tables: list[pa.Table]) -> pa.Table:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        for read, data in zip(prepared.reads, tables, strict=True):
            con.register(read.request.scan.register, data)
        result: pa.Table = con.sql(prepared.sql).to_arrow_table()
        return result
    except duckdb.Error as exc:
        raise _duckdb_error(exc, prepared) from None
    finally:
        con.close()


def _duckdb_error(exc: Exception, prepared: _Prepared) -> OpenDMSError:
    """DuckDB's message with the registered tables named as the query names them."""
    import duckdb

    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for read in reversed(prepared.reads):
        message = message.replace(read.request.scan.register, str(read.request.scan.name))
    user = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)
    if isinstance(exc, user):
        return ConfigError(f"query: {message}")
    return OpenDMSError(f"query failed in DuckDB: {message}")
