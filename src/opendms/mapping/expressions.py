"""DMS ``add-column`` expressions, and producing target batches from source batches.

DMS expressions are SQLite expressions over ``$column`` references to *source*
columns, and opendms evaluates them with SQLite itself (see
:mod:`opendms.mapping._sqlexpr`): every SQLite function and operator behaves as in
SQLite, plus DMS's ``operation_indicator(d, u, i)``, ``hash_sha256(x)`` and
``replaceChars(x, y, z)``. Source values reach SQLite as SQLite holds them: integers
and reals as such, decimals through NUMERIC affinity, text and blobs as they are,
booleans as 0/1, dates, times and timestamps as SQLite's date-time text
(``2024-01-02 03:04:05.5``, timestamps with a zone in UTC), anything else as text.
The result is converted to the column's declared type exactly (a value that would
change is a DataError), except that text longer than a ``string(n)`` is truncated
to n characters (see :class:`Truncation`). In limited LOB mode every LOB output (an
output with a ``lob_limit``, see :mod:`opendms.mapping.lobs`) longer than its limit is
cut to it and listed as a Truncation too; one that cannot be cut (JSON, XML, a key) is
a DataError.

Expressions in a small subset (text and integer columns, ``||``, integer ``+ - *``,
``upper``/``lower``/``trim``) are evaluated over whole Arrow arrays instead, by
:mod:`opendms.mapping._arrowexpr`, with SQLite's results (tested against SQLite).

DMS header columns (``$AR_H_*``, :data:`HEADERS`) and metadata (``$AR_M_*``,
:data:`METADATA`) are SQL parameters: :func:`full_load_headers` gives their
full-load values, :func:`change_headers` those of one change.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from opendms.errors import ConfigError, DataError
from opendms.mapping._arrowexpr import (
    Evaluator,
    IntegerOverflowError,
    NotVectorisableError,
    compile_vector,
)
from opendms.mapping._cast import cast_exact, row_labeler
from opendms.mapping.lobs import TASK_SETTING, over_limit, too_large, truncatable, truncate_lobs
from opendms.model import Column, ColumnType, Kind, arrow_type

if TYPE_CHECKING:
    import sqlite3

    from opendms.mapping.plan import TablePlan

__all__ = [
    "HEADERS",
    "METADATA",
    "Truncation",
    "change_headers",
    "check_syntax",
    "evaluate_outputs",
    "full_load_headers",
    "referenced_columns",
    "uses_operation",
    "validate_expression",
]

_REF = re.compile(r"\$(\w+)")
_SKIP = re.compile(r"'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|`[^`]*`?|--[^\n]*|/\*.*?(?:\*/|$)", re.S)
_OPERATION = re.compile(r"operation_indicator\s*\(", re.I)
_SELECT = re.compile(r"select\b", re.I)
_WORD = re.compile(r"\w")

HEADERS = (
    "AR_H_STREAM_POSITION",
    "AR_H_TIMESTAMP",
    "AR_H_COMMIT_TIMESTAMP",
    "AR_H_OPERATION",
    "AR_H_USER",
    "AR_H_CHANGE_SEQ",
    "AR_H_TRANSACTION_ID",
)
"""The DMS header columns an expression may read (``$AR_H_OPERATION``, ...)."""

METADATA = (
    "AR_M_SOURCE_SCHEMA",
    "AR_M_SOURCE_TABLE_NAME",
    "AR_M_SOURCE_COLUMN_NAME",
    "AR_M_SOURCE_COLUMN_DATATYPE",
)
"""The DMS metadata variables; the column ones are NULL in an add-column expression
(it has no source column)."""

_TEXT_KINDS = (Kind.STRING, Kind.JSON, Kind.UUID, Kind.ENUM)


def _timestamp_text(value: datetime) -> str:
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def full_load_headers(now: datetime | None = None) -> dict[str, Any]:
    """The header values of rows read by a full load (as DMS gives them): operation
    ``INSERT``, both timestamps the current UTC time, empty stream position, change
    sequence, transaction id and user."""
    stamp = _timestamp_text(now or datetime.now(UTC))
    return {
        "AR_H_STREAM_POSITION": "",
        "AR_H_TIMESTAMP": stamp,
        "AR_H_COMMIT_TIMESTAMP": stamp,
        "AR_H_OPERATION": "INSERT",
        "AR_H_USER": "",
        "AR_H_CHANGE_SEQ": "",
        "AR_H_TRANSACTION_ID": "",
    }


def change_headers(
    operation: str,
    commit_time: datetime,
    position: str,
    sequence: int,
    transaction_id: str | None,
    user: str | None = None,
) -> dict[str, Any]:
    """The header values of one change: ``operation`` is INSERT, UPDATE or DELETE, both
    timestamps the commit time (UTC), the change sequence the commit time as
    ``YYYYMMDDHHmmSShh`` followed by ``sequence`` in 19 zero-padded digits."""
    utc = commit_time.astimezone(UTC) if commit_time.tzinfo else commit_time
    stamp = utc.strftime("%Y%m%d%H%M%S") + f"{utc.microsecond // 10000:02d}"
    text = _timestamp_text(utc if utc.tzinfo else utc.replace(tzinfo=UTC))
    return {
        "AR_H_STREAM_POSITION": position,
        "AR_H_TIMESTAMP": text,
        "AR_H_COMMIT_TIMESTAMP": text,
        "AR_H_OPERATION": operation,
        "AR_H_USER": user,
        "AR_H_CHANGE_SEQ": f"{stamp}{sequence % 10**19:019d}",
        "AR_H_TRANSACTION_ID": transaction_id,
    }


def _scan(expression: str, replace: Mapping[str, str] | None) -> tuple[str, list[str], bool, bool]:
    """Find ``$name`` refs outside literals/comments; optionally substitute them (and
    ``operation_indicator(`` by :data:`_sqlexpr.OPERATION_FUNCTION`). Also says whether
    the text has a ``SELECT`` outside literals (a subquery) and whether it calls
    ``operation_indicator``."""
    out: list[str] = []
    refs: list[str] = []
    select = operation = False
    pos = 0
    while pos < len(expression):
        skip = _SKIP.match(expression, pos)
        ref = _REF.match(expression, pos)
        word_start = pos == 0 or not _WORD.match(expression[pos - 1])
        if skip:
            out.append(skip.group())
            pos = skip.end()
        elif ref:
            refs.append(ref.group(1))
            out.append(replace[ref.group(1)] if replace is not None else ref.group())
            pos = ref.end()
        elif word_start and (op := _OPERATION.match(expression, pos)):
            operation = True
            if replace is None:
                out.append(op.group())
            else:
                from opendms.mapping._sqlexpr import OPERATION_FUNCTION

                out.append(f"{OPERATION_FUNCTION}(:AR_H_OPERATION, ")
            pos = op.end()
        else:
            select = select or bool(word_start and _SELECT.match(expression, pos))
            out.append(expression[pos])
            pos += 1
    return "".join(out), refs, select, operation


def referenced_columns(expression: str) -> tuple[str, ...]:
    """The ``$name`` references of a DMS expression, first use first."""
    return tuple(dict.fromkeys(_scan(expression, None)[1]))


def uses_operation(expression: str) -> bool:
    """Whether the expression calls ``operation_indicator``."""
    return _scan(expression, None)[3]


def _special(name: str) -> bool:
    return name in HEADERS or name in METADATA


def _substitutions(refs: Sequence[str], columns: Mapping[str, str]) -> dict[str, str]:
    """``$name`` -> SQL: a source column by its ``cN``, a header by its parameter."""
    return {r: columns.get(r, f":{r}") for r in refs}


def _parameters(headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {name: None for name in (*HEADERS, *METADATA)}
    params.update(full_load_headers() if headers is None else headers)
    return params


def check_syntax(expression: str, *, where: str = "", path: str = "") -> None:
    """Raise ConfigError when ``expression`` is not one SQLite scalar expression."""
    from opendms.mapping import _sqlexpr

    refs = referenced_columns(expression)
    columns = {r: f"c{i}" for i, r in enumerate(r for r in refs if not _special(r))}
    text, _, select, _ = _scan(expression, _substitutions(refs, columns))
    try:
        if select:
            raise ValueError("subqueries are not supported")
        if not expression.strip():
            raise ValueError("the expression is empty")
        _sqlexpr.check(_sqlexpr.connect(len(columns)), text, _parameters())
    except (ValueError, _sqlexpr.Error) as exc:
        raise ConfigError(
            f"invalid expression {expression!r}: {_why(exc)}", where=where, path=path
        ) from exc


def _why(exc: BaseException) -> str:
    from opendms.mapping._sqlexpr import OPERATION_FUNCTION

    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.replace(OPERATION_FUNCTION, "operation_indicator")
    if text == "row value misused":
        return "expected a single expression, not a list"
    if "misuse of aggregate" in text or "misuse of window" in text:
        return f"aggregate and window functions are not supported ({text})"
    return text


def validate_expression(
    expression: str,
    columns: Sequence[Column],
    *,
    target: ColumnType | None = None,
    where: str = "",
    path: str = "",
) -> None:
    """Check ``expression`` against the source ``columns`` (and the target type).

    Raises ConfigError for syntax errors, unknown column or header references,
    unknown functions, and constant results that cannot be converted to ``target``.
    """
    check_syntax(expression, where=where, path=path)
    by_name = {c.name: c for c in columns}
    refs = referenced_columns(expression)
    for ref in refs:
        if ref in by_name or _special(ref):
            continue
        if re.fullmatch(r"AR_[HM]_\w+", ref):
            known = ", ".join(f"${h}" for h in (*HEADERS, *METADATA))
            message = f"${ref} is not a DMS header or metadata column (known: {known})"
        else:
            message = f"expression refers to ${ref}, which is not a column of the source table"
        raise ConfigError(message, where=where, path=path)
    if target is None or any(r in by_name for r in refs):
        return
    # A constant: its value must convert to the target type.
    from opendms.mapping import _sqlexpr

    text = _scan(expression, _substitutions(refs, {}))[0]
    try:
        con = _sqlexpr.connect(0)
        rows = _sqlexpr.run(con, f"SELECT ({text}\n) FROM {_sqlexpr.TABLE}", [], 1, _parameters())
        _result_array([rows[0][0]], target, "x", "", lambda i: "")
    except (_sqlexpr.Error, DataError) as exc:
        raise ConfigError(
            f"invalid expression {expression!r}: {_why(exc)}", where=where, path=path
        ) from exc


# -- values between Arrow and SQLite ------------------------------------------------


def _sqlite_values(array: pa.Array[Any], ctype: ColumnType) -> list[Any]:
    """A source column's values as SQLite would hold them (see the module docstring)."""
    t = array.type
    if pa.types.is_boolean(t):
        return pc.cast(array, pa.int8()).to_pylist()
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = array.to_pylist()
        if t == pa.uint64():
            return [float(v) if v is not None and v >= 2**63 else v for v in values]
        return values
    if _held_as_is(t):
        return array.to_pylist()
    if pa.types.is_timestamp(t) and t.tz is not None:
        array = pc.cast(array, pa.timestamp(t.unit))  # UTC wall time
    return [None if v is None else _sqlite_text(v, t) for v in array.to_pylist()]


def _held_as_is(t: pa.DataType) -> bool:
    """Text and binary values, which SQLite holds as they are."""
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
    )


def _sqlite_text(value: Any, t: pa.DataType) -> str:
    """A non-null value of any other type as the text SQLite holds it as."""
    if pa.types.is_timestamp(t):
        return str(value.isoformat(sep=" "))
    if pa.types.is_date(t) or pa.types.is_time(t):
        return str(value.isoformat())
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        import json

        return json.dumps(value, default=str)
    return str(value)


def _numeric(ctype: ColumnType) -> bool:
    return ctype.kind is Kind.DECIMAL


def _sql_result(text: str, ctype: ColumnType) -> str:
    """The SELECT item for an expression whose result goes to a ``ctype`` column: text
    and blob columns take SQLite's own CAST (its text of numbers)."""
    if ctype.kind in _TEXT_KINDS or arrow_type(ctype) == pa.string():
        return f"CAST(({text}\n) AS TEXT)"
    if ctype.kind is Kind.BINARY:
        return f"CAST(({text}\n) AS BLOB)"
    return f"({text}\n)"


def _inferred(values: list[Any]) -> pa.Array[Any]:
    """An Arrow array of SQLite result values (mixed storage classes become text)."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(len(values))
    if kinds == {int}:
        return pa.array(values, pa.int64())
    if kinds <= {int, float}:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kinds == {str}:
        return pa.array(values, pa.string())
    if kinds == {bytes}:
        return pa.array(values, pa.binary())
    if kinds <= {int, Decimal}:
        return pa.array([None if v is None else Decimal(v) for v in values])
    return pa.array([_result_text(v) for v in values], pa.string())


def _result_text(v: Any) -> str | None:
    """One value of a result column of mixed storage classes, as text."""
    from opendms.mapping._sqlexpr import real_text

    if v is None or isinstance(v, str):
        return v
    if isinstance(v, float):
        return real_text(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _decimals(values: list[Any], scale: int) -> list[Any]:
    """REAL results for a DECIMAL(p,s) column: SQLite's 15 significant digits, rounded
    half away from zero to s decimals as a database does on insert (REAL arithmetic is
    inexact: 19.99 * 3 is 59.970000000000006); other values stay."""
    from opendms.mapping._sqlexpr import real_text

    step = Decimal(1).scaleb(-scale)
    return [
        Decimal(real_text(v)).quantize(step, ROUND_HALF_UP)
        if isinstance(v, float) and math.isfinite(v)
        else v
        for v in values
    ]


@dataclass
class Truncation:
    """Rows whose text result was cut to its ``string(n)`` length, or (``lob``) whose LOB
    value was cut to ``length`` bytes in limited LOB mode (DMS truncates; the task's
    DataTruncationErrorPolicy decides what else happens)."""

    column: str
    rows: list[int]
    length: int
    lob: bool = False
    setting: str = TASK_SETTING  # a LOB's: the setting its limit comes from

    @property
    def reason(self) -> str:
        """What was done, as recorded with the row."""
        return truncation_reason(self.length, self.lob, self.setting)


def truncation_reason(length: int, lob: bool = False, setting: str = TASK_SETTING) -> str:
    """The recorded reason of a value cut to ``length`` characters (a LOB: bytes, the
    limit set by ``setting``)."""
    if lob:
        return f"LOB value truncated to {length} bytes ({setting} {length // 1024} KB)"
    return f"value truncated to {length} characters"


class _LobLimit(NamedTuple):
    """A column's limit in limited LOB mode: ``size`` bytes; ``cuttable``: whether a value
    over it may be cut (else it is a data error); ``setting``: where the limit comes from."""

    size: int
    cuttable: bool
    setting: str = TASK_SETTING


def _limited(
    array: pa.Array[Any],
    lob: _LobLimit,
    column: str,
    table: str,
    label: Any,
    truncations: list[Truncation] | None,
) -> pa.Array[Any]:
    """Limited LOB mode: the LOB values of ``array`` cut to the limit (listed in
    ``truncations``), or a DataError for the first one over it that cannot be cut."""
    limit, setting = lob.size, lob.setting
    if not lob.cuttable:
        rows = over_limit(array, limit)
        if rows:
            value = array[rows[0]].as_py()
            size = len(value if isinstance(value, bytes) else str(value).encode("utf-8"))
            message = too_large(column, size, limit, setting)
            raise DataError(table, message, row=label(rows[0]), column=column)
        return array
    array, rows = truncate_lobs(array, limit)
    if rows and truncations is not None:
        truncations.append(Truncation(column, rows, limit, lob=True, setting=setting))
    return array


def _result_array(
    values: list[Any],
    ctype: ColumnType,
    column: str,
    table: str,
    label: Any,
    truncations: list[Truncation] | None = None,
) -> pa.Array[Any]:
    """SQLite results as an Arrow array of ``ctype`` (DataError for a value that would
    change, text beyond a string length truncated and reported in ``truncations``)."""
    from opendms.mapping._sqlexpr import InvalidText

    bad = next((i for i, v in enumerate(values) if isinstance(v, InvalidText)), None)
    if bad is not None:
        message = f"column {column}: the expression's text {values[bad]!r} is not UTF-8"
        raise DataError(table, message, row=label(bad))
    to_type = arrow_type(ctype)
    if ctype.kind is Kind.DECIMAL and pa.types.is_decimal(to_type):
        values = _decimals(values, ctype.scale or 0)
    return _typed_result(_inferred(values), ctype, column, table, label, truncations)


def _typed_result(
    array: pa.Array[Any],
    ctype: ColumnType,
    column: str,
    table: str,
    label: Any,
    truncations: list[Truncation] | None = None,
) -> pa.Array[Any]:
    """Expression results (text, integers, reals, blobs or decimals) as an Arrow array
    of ``ctype``: text beyond a string length is truncated and reported in
    ``truncations``, a value that would change is a DataError."""
    to_type = arrow_type(ctype)
    if pa.types.is_integer(array.type) and (ctype.kind in _TEXT_KINDS or to_type == pa.string()):
        array = pc.cast(array, pa.string())  # SQLite's CAST(... AS TEXT)
    n = ctype.length
    if ctype.kind is Kind.STRING and n is not None and pa.types.is_string(array.type):
        text: Any = array  # the stubs type utf8_length per string class
        long: Any = pc.fill_null(pc.greater(pc.utf8_length(text), pa.scalar(n)), False)
        rows: list[int] = pc.indices_nonzero(long).to_pylist()
        if rows:
            array = pc.utf8_slice_codeunits(text, 0, n)
            if truncations is not None:
                truncations.append(Truncation(column, rows, n))
    try:
        return cast_exact(array, ctype, to_type, table=table, column=column, label=label)
    except pa.ArrowNotImplementedError as exc:
        valid: list[Any] = pc.indices_nonzero(pc.is_valid(array)).to_pylist()
        first = int(valid[0]) if valid else 0
        message = f"column {column}: value {array[first].as_py()!r} cannot become {ctype}"
        raise DataError(table, message, row=label(first)) from exc


# -- evaluation --------------------------------------------------------------


@dataclass
class _SqlPart:
    """One SELECT that SQLite runs for some of a plan's expression outputs."""

    outputs: tuple[int, ...]  # indexes of the outputs it computes, in column order
    inputs: tuple[str, ...]  # source columns it reads, as c0..cN
    sql: str
    con: sqlite3.Connection | None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Compiled:
    """What evaluate_outputs needs for one plan, built once."""

    schema: pa.Schema
    changed: tuple[bool, ...]  # per output: copied column whose type changes
    copies_only: bool  # every output copies a source column
    sqlite: _SqlPart  # the outputs SQLite computes on every batch
    everything: _SqlPart  # all expression outputs (when vectorised ones overflow)
    vector: dict[int, Evaluator] = field(default_factory=dict)  # outputs Arrow computes
    metadata: dict[str, Any] = field(default_factory=dict)
    operation: tuple[int, ...] = ()  # outputs that call operation_indicator or read headers
    limits: tuple[int | None, ...] = ()  # per output: its lob_limit
    cuttable: tuple[bool, ...] = ()  # per output: a LOB over its lob_limit may be cut

    @property
    def copies(self) -> bool:
        """Every output copies a source column as it is (LOB limits aside)."""
        return self.copies_only and not any(self.changed)

    @property
    def fast(self) -> bool:
        return self.copies and not any(n is not None for n in self.limits)


VECTORISE = True
"""Whether expressions in :mod:`opendms.mapping._arrowexpr`'s subset are evaluated over
Arrow arrays (tests turn it off to compare with SQLite)."""


def _sql_part(plan: TablePlan, outputs: Sequence[int]) -> _SqlPart:
    source_names = {c.name for c in plan.source.columns}
    inputs: dict[str, str] = {}
    parts = []
    for i in outputs:
        out = plan.outputs[i]
        expression = out.expression or ""
        refs = referenced_columns(expression)
        for ref in refs:
            if ref in source_names:
                inputs.setdefault(ref, f"c{len(inputs)}")
        text = _scan(expression, _substitutions(refs, inputs))[0]
        parts.append(f"{_sql_result(text, out.type)} AS o{i}")
    if not parts:
        return _SqlPart((), (), "", None)
    from opendms.mapping import _sqlexpr

    sql = f"SELECT {', '.join(parts)} FROM {_sqlexpr.TABLE} ORDER BY rowid"
    numeric = [j for j, name in enumerate(inputs) if _numeric(plan.source.column(name).type)]
    return _SqlPart(tuple(outputs), tuple(inputs), sql, _sqlexpr.connect(len(inputs), numeric))


def _vectorised(plan: TablePlan, outputs: Sequence[int]) -> dict[int, Evaluator]:
    """The outputs whose expressions Arrow evaluates exactly as SQLite does."""
    if not VECTORISE:
        return {}
    columns = {c.name: arrow_type(c.type) for c in plan.source.columns if not _numeric(c.type)}
    found: dict[int, Evaluator] = {}
    for i in outputs:
        out = plan.outputs[i]
        if not _vector_target(out.type):
            continue
        try:
            found[i] = compile_vector(out.expression or "", columns)
        except NotVectorisableError:
            continue
    return found


def _vector_target(ctype: ColumnType) -> bool:
    """Target types whose conversion of a text or integer result is the same from an
    Arrow array as from SQLite's values (not blobs: SQLite casts text to a BLOB)."""
    return ctype.kind is not Kind.BINARY and arrow_type(ctype) != pa.binary()


def _compile(plan: TablePlan) -> _Compiled:
    schema = pa.schema([pa.field(o.name, arrow_type(o.type)) for o in plan.outputs])
    changed = tuple(
        o.source is not None and o.type != plan.source.column(o.source).type for o in plan.outputs
    )
    expr_outputs = tuple(i for i, o in enumerate(plan.outputs) if o.expression is not None)
    source_names = {c.name for c in plan.source.columns}
    operation = []
    for i in expr_outputs:
        expression = plan.outputs[i].expression or ""
        refs = referenced_columns(expression)
        if uses_operation(expression) or any(
            r.startswith("AR_H_") for r in refs if r not in source_names
        ):
            operation.append(i)
    vector = _vectorised(plan, expr_outputs)
    everything = _sql_part(plan, expr_outputs)
    rest = [i for i in expr_outputs if i not in vector]
    sqlite = everything if not vector else _sql_part(plan, rest)
    keys, source_keys = set(plan.target.primary_key), set(plan.source.primary_key)
    cuttable = tuple(
        truncatable(o.type) and o.name not in keys and o.source not in source_keys
        for o in plan.outputs
    )
    metadata = {
        "AR_M_SOURCE_SCHEMA": plan.source.schema,
        "AR_M_SOURCE_TABLE_NAME": plan.source.name,
    }
    return _Compiled(
        schema,
        changed,
        all(o.source is not None for o in plan.outputs),
        sqlite,
        everything,
        vector,
        metadata,
        tuple(operation),
        tuple(o.lob_limit for o in plan.outputs),
        cuttable,
    )


def compiled(plan: TablePlan) -> _Compiled:
    cache: dict[str, Any] = plan._cache
    if "compiled" not in cache:
        cache["compiled"] = _compile(plan)
    result: _Compiled = cache["compiled"]
    return result


def _sqlite_results(
    comp: _Compiled,
    part: _SqlPart,
    plan: TablePlan,
    batch: pa.RecordBatch,
    headers: Mapping[str, Any] | None,
) -> dict[int, list[Any]]:
    if part.con is None:
        return {}
    from opendms.mapping import _sqlexpr

    columns = [
        _sqlite_values(batch.column(name), plan.source.column(name).type) for name in part.inputs
    ]
    params = _parameters(headers)
    params.update(comp.metadata)
    with part.lock:
        rows = _sqlexpr.run(part.con, part.sql, columns, batch.num_rows, params)
    if len(rows) != batch.num_rows:
        raise RuntimeError("expression evaluation changed the number of rows")
    return {i: [row[j] for row in rows] for j, i in enumerate(part.outputs)}


def _expression_results(
    comp: _Compiled, plan: TablePlan, batch: pa.RecordBatch, headers: Mapping[str, Any] | None
) -> dict[int, list[Any] | pa.Array[Any]]:
    """Each expression output's values: Arrow arrays where vectorised, else SQLite's."""
    try:
        vector = {i: evaluate(batch) for i, evaluate in comp.vector.items()}
    except (IntegerOverflowError, NotVectorisableError):
        return dict(_sqlite_results(comp, comp.everything, plan, batch, headers))
    results: dict[int, list[Any] | pa.Array[Any]] = dict(vector)
    results.update(_sqlite_results(comp, comp.sqlite, plan, batch, headers))
    return results


def evaluate_outputs(
    batch: pa.RecordBatch,
    plan: TablePlan,
    headers: Mapping[str, Any] | None = None,
    truncations: list[Truncation] | None = None,
) -> pa.RecordBatch:
    """The target batch (columns = ``plan.outputs``) for a batch of ``plan.read_columns``.

    Copied columns pass through untouched (zero-copy); changed types are cast
    exactly or raise DataError; expressions are evaluated by SQLite with the header
    values ``headers`` (:func:`full_load_headers` when None). Expression text cut to
    its column's length, and LOB values cut to their ``lob_limit``, are listed in
    ``truncations`` when given.
    """
    comp = compiled(plan)
    names = comp.schema.names
    if comp.fast:
        arrays = [batch.column(o.source or "") for o in plan.outputs]
        return pa.RecordBatch.from_arrays(arrays, names=names)
    computed = _expression_results(comp, plan, batch, headers)
    label = row_labeler(batch, plan.source.primary_key)
    table = plan.source.qualified
    arrays = []
    for i, (out, field_) in enumerate(zip(plan.outputs, comp.schema, strict=True)):
        if i in computed:
            values = computed[i]
            arrays.append(
                _result_array(values, out.type, out.name, table, label, truncations)
                if isinstance(values, list)
                else _typed_result(values, out.type, out.name, table, label, truncations)
            )
            continue
        if out.source is None:
            arrays.append(pa.nulls(batch.num_rows, field_.type))
            continue
        array = batch.column(out.source)
        if comp.changed[i]:
            array = cast_exact(
                array, out.type, field_.type, table=table, column=out.name, label=label
            )
        arrays.append(array)
    for i, limit in enumerate(comp.limits):
        if limit is not None:
            lob = _LobLimit(limit, comp.cuttable[i], plan.lobs.setting)
            arrays[i] = _limited(arrays[i], lob, names[i], table, label, truncations)
    return pa.RecordBatch.from_arrays(arrays, names=names)
