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

import pyarrow as pa

from opendms.errors import ConfigError
from opendms.mapping._cast import cast_exact, convert, row_labeler
from opendms.model import Column, ColumnType, arrow_type

if TYPE_CHECKING:
    import duckdb
    from sqlglot import exp

    from opendms.mapping.plan import TablePlan

# sqlglot and DuckDB (opendms.mapping._sqlexpr) are imported on first use, so
# mappings without expressions never pay for importing them.

__all__ = ["check_syntax", "evaluate_outputs", "referenced_columns", "validate_expression"]

_REF = re.compile(r"\$(\w+)")
_SKIP = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|`[^`]*`?|--[^\n]*|/\*.*?(?:\*/|$)", re.S)
_HEADER = re.compile(r"AR_[HM]_\w+")
_ROWS = "__opendms_rows"


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
    from opendms.mapping import _sqlexpr

    return _sqlexpr.parse(_scan(expression, replace)[0])


def check_syntax(expression: str, *, where: str = "", path: str = "") -> None:
    """Raise ConfigError when ``expression`` is not one SQLite scalar expression."""
    from opendms.mapping._sqlexpr import SqlglotError

    names = {ref: _quote(ref) for ref in referenced_columns(expression)}
    try:
        _parse(expression, names)
    except (ValueError, SqlglotError) as exc:
        raise ConfigError(
            f"invalid expression {expression!r}: {exc}", where=where, path=path
        ) from exc


def to_duckdb(expression: str, replace: dict[str, str]) -> str:
    """DuckDB SQL for a DMS expression, with ``$name`` replaced per ``replace``."""
    from opendms.mapping import _sqlexpr

    return _sqlexpr.to_duckdb(_scan(expression, replace)[0])


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
    from opendms.mapping import _sqlexpr
    from opendms.mapping._sqlexpr import DuckDBError, SqlglotError

    try:
        sql = f"SELECT {to_duckdb(expression, replace)} AS o FROM {_sqlexpr.TABLE}"
        result = _sqlexpr.validate(sql, _input_batch(nulls, 1))
        if target is not None:
            convert(result.column(0).combine_chunks(), arrow_type(target))
    except (SqlglotError, DuckDBError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
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
    sql = ""
    con = None
    if parts:
        from opendms.mapping import _sqlexpr

        sql = f"SELECT {', '.join(parts)} FROM {_sqlexpr.TABLE}"
        con = _sqlexpr.connect()
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
    from opendms.mapping import _sqlexpr

    inputs = _input_batch([batch.column(name) for name in comp.expr_inputs], batch.num_rows)
    with comp.lock:
        table = _sqlexpr.run(comp.con, comp.sql, inputs)
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
