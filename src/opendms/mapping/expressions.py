"""DMS ``add-column`` expressions, and producing target batches from source batches.

DMS expressions are SQLite syntax over ``$column`` references to *source*
columns. opendms translates them once per :class:`~opendms.mapping.plan.TablePlan`
with sqlglot (SQLite to DuckDB) and evaluates them vectorised by DuckDB over
the Arrow batch. DuckDB runs with ``integer_division`` on, so ``$a / $b`` on
integers truncates as in SQLite, and with macros for SQLite date functions
sqlglot leaves as they are: ``datetime(x)``, ``time(x)``, ``julianday(x)``,
``unixepoch(x)``; the time value ``'now'`` means the current UTC time.
Date modifiers (``date(x, '+1 day')``), aggregates, window functions,
subqueries and the DMS header columns (``$AR_H_*``, ``$AR_M_*``) are rejected
when the plan is made, never per batch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from opendms.errors import ConfigError
from opendms.mapping._cast import cast_exact, convert, row_labeler
from opendms.model import Column, ColumnType, arrow_type

if TYPE_CHECKING:
    from opendms.mapping.plan import TablePlan

__all__ = ["check_syntax", "evaluate_outputs", "referenced_columns", "validate_expression"]

_REF = re.compile(r"\$(\w+)")
_SKIP = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|`[^`]*`?|--[^\n]*|/\*.*?(?:\*/|$)", re.S)
_HEADER = re.compile(r"AR_[HM]_\w+")
_TABLE = "__opendms_batch"
_ROWS = "__opendms_rows"

_MACROS = {
    "sqlite_now": "() AS CAST(timezone('UTC', get_current_timestamp()) AS TIMESTAMP)",
    "sqlite_datetime": "(x) AS strftime(CAST(x AS TIMESTAMP), '%Y-%m-%d %H:%M:%S')",
    "sqlite_time": "(x) AS strftime(CAST(x AS TIMESTAMP), '%H:%M:%S')",
    "sqlite_julianday": "(x) AS julian(CAST(x AS TIMESTAMP)) - 0.5",
    "sqlite_unixepoch": "(x) AS CAST(epoch(CAST(x AS TIMESTAMP)) AS BIGINT)",
}
_DATE_FUNCTIONS = ("date", "datetime", "time", "julianday", "unixepoch", "strftime")
_DATE_NODES = (exp.Date, exp.TsOrDsToTimestamp, exp.TsOrDsToDate, exp.TimeToStr)


def _scan(expression: str, replace: dict[str, str] | None) -> tuple[str, list[str]]:
    """Find ``$name`` refs outside literals/comments; optionally substitute them."""
    out: list[str] = []
    refs: list[str] = []
    pos = 0
    while pos < len(expression):
        skip = _SKIP.match(expression, pos)
        ref = _REF.match(expression, pos)
        if skip:
            out.append(skip.group())
            pos = skip.end()
        elif ref:
            refs.append(ref.group(1))
            out.append(replace[ref.group(1)] if replace is not None else ref.group())
            pos = ref.end()
        else:
            out.append(expression[pos])
            pos += 1
    return "".join(out), refs


def referenced_columns(expression: str) -> tuple[str, ...]:
    """The ``$name`` column references of a DMS expression, first use first."""
    return tuple(dict.fromkeys(_scan(expression, None)[1]))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _parse(expression: str, replace: dict[str, str]) -> exp.Expression:
    """The single scalar expression, or ValueError / SqlglotError."""
    text, _ = _scan(expression, replace)
    trees = sqlglot.parse(f"SELECT {text}", read="sqlite")
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


def check_syntax(expression: str, *, where: str = "", path: str = "") -> None:
    """Raise ConfigError when ``expression`` is not one SQLite scalar expression."""
    names = {ref: _quote(ref) for ref in referenced_columns(expression)}
    try:
        _parse(expression, names)
    except (ValueError, SqlglotError) as exc:
        raise ConfigError(
            f"invalid expression {expression!r}: {exc}", where=where, path=path
        ) from exc


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


def to_duckdb(expression: str, replace: dict[str, str]) -> str:
    """DuckDB SQL for a DMS expression, with ``$name`` replaced per ``replace``."""
    tree = _parse(expression, replace).transform(_sqlite_now).transform(_sqlite_functions)
    return tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE, comments=False)


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": 1})
    con.execute("SET integer_division = true")
    for name, body in _MACROS.items():
        con.execute(f"CREATE MACRO {name}{body}")
    return con


_validator_lock = threading.Lock()
_validator: list[duckdb.DuckDBPyConnection] = []


def _run(con: duckdb.DuckDBPyConnection, sql: str, batch: pa.RecordBatch) -> pa.Table:
    con.register(_TABLE, batch)
    try:
        result: pa.Table = con.sql(sql).to_arrow_table()
    finally:
        con.unregister(_TABLE)
    return result


def _input_batch(arrays: Sequence[pa.Array[Any]], rows: int) -> pa.RecordBatch:
    """Columns c0..cN for DuckDB (plus a row counter when there are none)."""
    if not arrays:
        return pa.record_batch([pa.nulls(rows, pa.bool_())], names=[_ROWS])
    return pa.record_batch(list(arrays), names=[f"c{i}" for i in range(len(arrays))])


def validate_expression(
    expression: str,
    columns: Sequence[Column],
    *,
    target: ColumnType | None = None,
    where: str = "",
    path: str = "",
) -> None:
    """Check ``expression`` against the source ``columns`` (and the target type).

    Raises ConfigError for syntax errors, unknown or unsupported column
    references, unknown functions, type errors, and results that cannot be
    converted to ``target``.
    """
    check_syntax(expression, where=where, path=path)
    by_name = {c.name: c for c in columns}
    refs = referenced_columns(expression)
    for ref in refs:
        if ref in by_name:
            continue
        if _HEADER.fullmatch(ref):
            message = f"DMS header column ${ref} is not supported by opendms"
        else:
            message = f"expression refers to ${ref}, which is not a column of the source table"
        raise ConfigError(message, where=where, path=path)
    # One all-NULL row: constant sub-expressions are evaluated, not just bound.
    nulls = [pa.array([None], arrow_type(by_name[r].type)) for r in refs]
    replace = {r: f"c{i}" for i, r in enumerate(refs)}
    try:
        sql = f"SELECT {to_duckdb(expression, replace)} AS o FROM {_TABLE}"
        with _validator_lock:
            if not _validator:
                _validator.append(_connect())
            result = _run(_validator[0], sql, _input_batch(nulls, 1))
        if target is not None:
            convert(result.column(0).combine_chunks(), arrow_type(target))
    except (SqlglotError, duckdb.Error, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        message = str(exc).splitlines()[0]
        raise ConfigError(
            f"invalid expression {expression!r}: {message}", where=where, path=path
        ) from exc


# -- evaluation --------------------------------------------------------------


@dataclass
class _Compiled:
    """What evaluate_outputs needs for one plan, built once."""

    schema: pa.Schema
    changed: tuple[bool, ...]  # per output: copied column whose type changes
    copies_only: bool  # every output copies a source column
    expr_outputs: tuple[int, ...]  # indexes of outputs computed by DuckDB
    expr_inputs: tuple[str, ...]  # source columns DuckDB reads, as c0..cN
    sql: str
    con: duckdb.DuckDBPyConnection | None
    lock: threading.Lock

    @property
    def fast(self) -> bool:
        return self.copies_only and not any(self.changed)


def _compile(plan: TablePlan) -> _Compiled:
    schema = pa.schema([pa.field(o.name, arrow_type(o.type)) for o in plan.outputs])
    changed = tuple(
        o.source is not None and o.type != plan.source.column(o.source).type for o in plan.outputs
    )
    expr_outputs = tuple(i for i, o in enumerate(plan.outputs) if o.expression is not None)
    inputs: dict[str, str] = {}
    for i in expr_outputs:
        for ref in referenced_columns(plan.outputs[i].expression or ""):
            inputs.setdefault(ref, f"c{len(inputs)}")
    parts = [f"{to_duckdb(plan.outputs[i].expression or '', inputs)} AS o{i}" for i in expr_outputs]
    sql = f"SELECT {', '.join(parts)} FROM {_TABLE}" if parts else ""
    con = _connect() if parts else None
    copies_only = all(o.source is not None for o in plan.outputs)
    return _Compiled(
        schema, changed, copies_only, expr_outputs, tuple(inputs), sql, con, threading.Lock()
    )


def compiled(plan: TablePlan) -> _Compiled:
    cache: dict[str, Any] = plan._cache
    if "compiled" not in cache:
        cache["compiled"] = _compile(plan)
    result: _Compiled = cache["compiled"]
    return result


def _expression_results(comp: _Compiled, batch: pa.RecordBatch) -> dict[int, pa.Array[Any]]:
    if comp.con is None:
        return {}
    inputs = _input_batch([batch.column(name) for name in comp.expr_inputs], batch.num_rows)
    with comp.lock:
        table = _run(comp.con, comp.sql, inputs)
    if table.num_rows != batch.num_rows:
        raise RuntimeError("expression evaluation changed the number of rows")
    return {i: table.column(f"o{i}").combine_chunks() for i in comp.expr_outputs}


def evaluate_outputs(batch: pa.RecordBatch, plan: TablePlan) -> pa.RecordBatch:
    """The target batch (columns = ``plan.outputs``) for a batch of ``plan.read_columns``.

    Copied columns pass through untouched (zero-copy); changed types are cast
    exactly or raise DataError; expressions are evaluated by DuckDB.
    """
    comp = compiled(plan)
    names = comp.schema.names
    if comp.fast:
        arrays = [batch.column(o.source or "") for o in plan.outputs]
        return pa.RecordBatch.from_arrays(arrays, names=names)
    computed = _expression_results(comp, batch)
    label = row_labeler(batch, plan.source.primary_key)
    arrays = []
    for i, (out, field) in enumerate(zip(plan.outputs, comp.schema, strict=True)):
        if out.source is not None:
            array = batch.column(out.source)
        elif i in computed:
            array = computed[i]
        else:
            arrays.append(pa.nulls(batch.num_rows, field.type))
            continue
        if comp.changed[i] or i in computed:
            array = cast_exact(
                array,
                out.type,
                field.type,
                table=plan.source.qualified,
                column=out.name,
                label=label,
            )
        arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=names)
