"""The sqlglot and DuckDB side of :mod:`opendms.mapping.expressions`.

Importing this module imports sqlglot and DuckDB (about a quarter of a second),
so :mod:`opendms.mapping.expressions` imports it only when a mapping actually
has an ``add-column`` expression. Functions here take expression text whose
``$name`` references have already been substituted.
"""

from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

__all__ = [
    "TABLE",
    "DuckDBError",
    "SqlglotError",
    "connect",
    "parse",
    "run",
    "to_duckdb",
    "validate",
]

TABLE = "__opendms_batch"
DuckDBError = duckdb.Error

_MACROS = {
    "sqlite_now": "() AS CAST(timezone('UTC', get_current_timestamp()) AS TIMESTAMP)",
    "sqlite_datetime": "(x) AS strftime(CAST(x AS TIMESTAMP), '%Y-%m-%d %H:%M:%S')",
    "sqlite_time": "(x) AS strftime(CAST(x AS TIMESTAMP), '%H:%M:%S')",
    "sqlite_julianday": "(x) AS julian(CAST(x AS TIMESTAMP)) - 0.5",
    "sqlite_unixepoch": "(x) AS CAST(epoch(CAST(x AS TIMESTAMP)) AS BIGINT)",
}
_DATE_FUNCTIONS = ("date", "datetime", "time", "julianday", "unixepoch", "strftime")
_DATE_NODES = (exp.Date, exp.TsOrDsToTimestamp, exp.TsOrDsToDate, exp.TimeToStr)


def parse(text: str) -> exp.Expression:
    """The single scalar expression, or ValueError / SqlglotError."""
    try:
        trees = sqlglot.parse(f"SELECT {text}", read="sqlite")
    except RecursionError:  # sqlglot's parser recurses once per nesting level
        raise ValueError("the expression is nested too deeply") from None
    if len(trees) != 1 or not isinstance(trees[0], exp.Select):
        raise ValueError("expected a single expression")
    select = trees[0]
    if len(select.expressions) != 1:
        raise ValueError("expected a single expression, not a list")
    if any(node is not select for node in select.find_all(exp.Select)):
        raise ValueError("subqueries are not supported")
    for kind, what in ((exp.From, "FROM"), (exp.Where, "WHERE"), (exp.Order, "ORDER BY")):
        if select.find(kind) is not None:
            raise ValueError(f"{what} is not allowed in a column expression")
    if select.find(exp.AggFunc) is not None or select.find(exp.Window) is not None:
        raise ValueError("aggregate and window functions are not supported")
    result: exp.Expression = select.expressions[0]
    return result


def _is_now(node: exp.Expression) -> bool:
    if not (isinstance(node, exp.Literal) and node.is_string and node.name.lower() == "now"):
        return False
    parent = node.parent
    if isinstance(parent, exp.Anonymous):
        return parent.name.lower() in _DATE_FUNCTIONS
    return isinstance(parent, _DATE_NODES)


def _sqlite_now(node: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="sqlite_now", expressions=[]) if _is_now(node) else node


def _sqlite_functions(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and f"sqlite_{node.name.lower()}" in _MACROS:
        return exp.Anonymous(this=f"sqlite_{node.name.lower()}", expressions=node.expressions)
    return node


def _sqlite_like(node: exp.Expression) -> exp.Expression:
    """SQLite's LIKE ignores (ASCII) case, DuckDB's does not: use ILIKE (GLOB stays)."""
    if type(node) is exp.Like:
        return exp.ILike(**node.args)  # keeps negate (NOT LIKE) and an ESCAPE parent
    return node


def to_duckdb(text: str) -> str:
    """DuckDB SQL for a (substituted) SQLite expression."""
    tree = parse(text).transform(_sqlite_now).transform(_sqlite_functions)
    tree = tree.transform(_sqlite_like)
    return tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE, comments=False)


def connect() -> duckdb.DuckDBPyConnection:
    """A single-threaded in-memory DuckDB with SQLite semantics and macros."""
    con = duckdb.connect(config={"threads": 1})
    con.execute("SET integer_division = true")
    for name, body in _MACROS.items():
        con.execute(f"CREATE MACRO {name}{body}")
    return con


def run(con: duckdb.DuckDBPyConnection, sql: str, batch: pa.RecordBatch) -> pa.Table:
    """``sql`` over ``batch`` registered as :data:`TABLE`."""
    con.register(TABLE, batch)
    try:
        result: pa.Table = con.sql(sql).to_arrow_table()
    finally:
        con.unregister(TABLE)
    return result


_validator_lock = threading.Lock()
_validator: list[duckdb.DuckDBPyConnection] = []


def validate(sql: str, batch: pa.RecordBatch) -> pa.Table:
    """:func:`run` on the shared validation connection (made on first use)."""
    with _validator_lock:
        if not _validator:
            _validator.append(connect())
        return run(_validator[0], sql, batch)
