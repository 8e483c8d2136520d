"""The change-record envelope: one typed record per captured row change, for every CDC
source (PostgreSQL pgoutput, MySQL/MariaDB binlog, SQLite triggers).

A :class:`ChangeRecord` says what changed (``op``, ``schema``, ``table``, ``key``,
``before``, ``after``), when (``commit_time``) and where in the source's log
(``position``, ``transaction_id``, ``sequence``). Targets that emit changes as messages
(handler functions, brokers, key-value stores) all emit this envelope, in one of its
three forms:

* :func:`to_json` / :func:`from_json`: a JSON object (lossless, see *Values* below),
  described by the JSON Schema :func:`json_schema` loads
  (``opendms/schemas/change-record.schema.json``);
* :func:`to_arrow`: an Arrow record batch with one fixed schema (:data:`ARROW_SCHEMA`);
* :func:`record_id`: a stable id for deduplication (a broker's message id).

Ops: ``I`` insert, ``U`` update, ``D`` delete, ``T`` truncate (every row of the table
is gone: no key, no images) and ``DDL`` (a schema change, described in ``ddl``).

Values: a source gives either the PostgreSQL text form of each value (a PostgreSQL
source: strings) or canonical Python values (MySQL/MariaDB, SQLite): see
:class:`opendms.changes.ChangeStream`. The envelope keeps them as they are; in JSON,
``null``, booleans, integers, finite floats and strings are themselves, lists are
arrays, and every other value is an object with one tagged member::

    {"$binary": "<base64>"}          bytes
    {"$decimal": "-12.3400"}         Decimal (plain fixed-point text, scale kept)
    {"$float": "NaN"}                NaN, Infinity, -Infinity (JSON has no such numbers)
    {"$date": "2024-02-29"}          date
    {"$time": "12:34:56.789000"}     time
    {"$timestamp": "2024-01-02T03:04:05.123456"}   datetime (``+00:00`` when aware)
    {"$interval": "P1M2DT3.5S"}      Arrow month-day-nano interval (ISO 8601 duration)

so :func:`from_json` gives back values equal to the originals.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any, Literal, TypeVar, cast, get_args

import pyarrow as pa

from opendms.changes import (
    LSN,
    UNCHANGED,
    BinlogPosition,
    Change,
    ColumnChange,
    Op,
    SeqPosition,
    TableChange,
    Transaction,
)
from opendms.errors import ConfigError, DataError

_V = TypeVar("_V")
RecordOp = Literal["I", "U", "D", "T", "DDL"]
Where = tuple[str, str, str]
"""(commit time text, position, transaction id) of a transaction."""
KeyOf = Callable[[str, str], tuple[str, ...]]
"""(schema, table) -> the table's key column names (``()``: use the change's own)."""


@dataclass(frozen=True)
class ChangeRecord:
    """One row change (or truncate, or schema change) of a committed source transaction.

    * ``key``: the row's key after the change (I, U) or before it (D), as far as the
      change carries the key columns; ``{}`` for T and DDL, and for an insert when no
      key columns are known.
    * ``before``: the old row as far as the source sent it (U, D): the whole row (a
      MySQL/MariaDB FULL row image, SQLite, PostgreSQL REPLICA IDENTITY FULL) or only
      the key columns; None for I, T, DDL.
    * ``after``: the new row (I, U); for U, columns the source did not send (unchanged
      PostgreSQL TOAST values) are left out and named in ``unchanged_columns``.
    * ``commit_time``: the transaction's commit time, ISO 8601 in UTC (``...Z``).
    * ``position``: the source position text of the transaction's end (what a consumer
      checkpoints on: a CDC task resumes after it); ``transaction_id``: the source's.
    * ``sequence``: the change's index in its transaction: (position, sequence) is
      unique and ordered (see :func:`record_id`); indexes of changes that make no record
      are skipped, so sequences need not be contiguous.
    * ``ddl``: DDL records only: what changed, in words (``add column note string``).
    """

    op: RecordOp
    schema: str
    table: str
    commit_time: str
    position: str
    transaction_id: str
    sequence: int
    key: dict[str, Any] = field(default_factory=dict)
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    unchanged_columns: tuple[str, ...] = ()
    ddl: str | None = None


# -- from transactions ------------------------------------------------------------------


def records_of(txn: Transaction, key_of: KeyOf | None = None) -> list[ChangeRecord]:
    """The envelopes of ``txn``'s changes, in order.

    ``key_of`` names a table's key columns (a target knows them from the source's
    catalog); without it (or when it returns ``()``) the key columns are the ones an
    update or delete carries (the primary key, or every column of a table without one);
    an insert carries none, so its key is then ``{}``. A DDL change
    that is only the source restating a table's columns (a PostgreSQL relation message)
    makes no record. A change the source could not decode raises DataError.
    """
    stamp = commit_text(txn.commit_time)
    where = (stamp, str(txn.end), str(txn.xid))
    out: list[ChangeRecord] = []
    for index, change in enumerate(txn.changes):
        if change.error:
            raise DataError(
                f"{change.schema}.{change.table}", change.error, column=change.error_column()
            )
        names = key_of(change.schema, change.table) if key_of is not None else ()
        record = _record(change, *place(change, index, where), names)
        if record is not None:
            out.append(record)
    return out


def place(change: Change, index: int, where: tuple[str, str, str]) -> tuple[int, Where]:
    """(sequence, where) of the ``index``-th change of a transaction at ``where``: the
    change's own position and sequence 0 when its source gives each change one
    (:attr:`Change.origin`)."""
    if change.origin:
        return 0, (where[0], str(change.origin), where[2])
    return index, where


def record_of(
    change: Change, index: int, where: tuple[str, str, str], key: tuple[str, ...]
) -> ChangeRecord | None:
    """The envelope of one change: the ``index``-th of its transaction, ``where`` =
    (commit time text, position, transaction id) of the transaction, ``key`` its table's
    key columns (``()``: the change's own); None for a DDL change that makes no record.
    The change must not carry a decode error (:func:`records_of` raises for those)."""
    return _record(change, *place(change, index, where), key)


def commit_text(commit: datetime) -> str:
    """A commit time as ISO 8601 UTC text with microseconds (naive times are UTC)."""
    aware = commit if commit.tzinfo is not None else commit.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _record(
    change: Change, index: int, where: tuple[str, str, str], names: tuple[str, ...]
) -> ChangeRecord | None:
    stamp, position, xid = where
    common = (change.schema, change.table, stamp, position, xid, index)
    if change.op is Op.TRUNCATE:
        return ChangeRecord("T", *common)
    if change.op is Op.DDL:
        text = ddl_text(change)
        return ChangeRecord("DDL", *common, ddl=text) if text else None
    names = names or change.key_columns
    before = _known(change.before()) if change.op is not Op.INSERT else None
    if change.op is Op.DELETE:
        return ChangeRecord("D", *common, key=_pick(names, before or {}), before=before or None)
    after = dict(zip(change.columns, change.values, strict=True))
    unchanged: tuple[str, ...] = ()
    if UNCHANGED in change.values:  # unchanged TOAST values: not in the after image
        unchanged = tuple(c for c, v in after.items() if v is UNCHANGED)
        after = _known(after)
    key = _pick(names, {**before, **after} if before else after)
    op: RecordOp = "I" if change.op is Op.INSERT else "U"
    return ChangeRecord(op, *common, key, before or None, after, unchanged)


def _known(row: dict[str, Any]) -> dict[str, Any]:
    return {c: v for c, v in row.items() if v is not UNCHANGED}


def _pick(names: Iterable[str], row: dict[str, Any]) -> dict[str, Any]:
    return {n: row[n] for n in names if n in row}


def ddl_text(change: Change) -> str:
    """A DDL change in words, one clause per change joined by ``; `` ("" when it only
    restates the table's columns)."""
    parts = [_table_text(change.table_ddl)] if change.table_ddl is not None else []
    parts += [_column_text(cc) for cc in change.ddl]
    return "; ".join(p for p in parts if p)


def _table_text(tc: TableChange) -> str:
    if tc.action == "create" and tc.table is not None:
        cols = ", ".join(
            f"{c.name} {c.type}" + ("" if c.nullable else " NOT NULL") for c in tc.table.columns
        )
        return f"create table ({cols})"
    if tc.action == "drop":
        return "drop table"
    if tc.action == "rename":
        return f"rename table to {tc.new_schema}.{tc.new_name}"
    return ""  # "columns": the source restates the columns; nothing changed by itself


def _column_text(cc: ColumnChange) -> str:
    if cc.action == "add":
        return f"add column {cc.column} {cc.ctype}" + ("" if cc.nullable else " NOT NULL")
    if cc.action == "drop":
        return f"drop column {cc.column}"
    if cc.action == "rename":
        return f"rename column {cc.column} to {cc.new_name}"
    return f"alter column {cc.column} type {cc.ctype}"


# -- JSON -------------------------------------------------------------------------------

_SCALAR_FIELDS = ("op", "schema", "table", "commit_time", "position", "transaction_id")


def to_json(record: ChangeRecord) -> dict[str, Any]:
    """The JSON-ready form of ``record`` (every member present; values as in the module
    docstring). A value with no JSON form raises DataError naming its column."""
    where = f"{record.schema}.{record.table}"
    return {
        "op": record.op,
        "schema": record.schema,
        "table": record.table,
        "key": _row_json(record.key, where),
        "before": None if record.before is None else _row_json(record.before, where),
        "after": None if record.after is None else _row_json(record.after, where),
        "unchanged_columns": list(record.unchanged_columns),
        "commit_time": record.commit_time,
        "position": record.position,
        "transaction_id": record.transaction_id,
        "sequence": record.sequence,
        "ddl": record.ddl,
    }


_PLAIN = frozenset({type(None), bool, int, str})


def _plain(row: dict[str, Any]) -> bool:
    """Whether every value of ``row`` is its own JSON form (no tag, no list): the
    common case, which :func:`_row_json` passes through as it is."""
    for value in row.values():
        kind = type(value)
        if kind not in _PLAIN and not (kind is float and math.isfinite(value)):
            return False
    return True


def _row_json(row: dict[str, Any], where: str) -> dict[str, Any]:
    if _plain(row):
        return row
    out: dict[str, Any] = {}
    for column, value in row.items():
        try:
            out[column] = value_json(value)
        except TypeError as exc:
            raise DataError(where, f"column {column}: {exc}", column=column) from None
    return out


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def value_json(value: Any) -> Any:
    """One value in its JSON form (TypeError for a value that has none)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": _NON_FINITE[str(value)]}
    if isinstance(value, pa.MonthDayNano):  # a tuple: before lists
        return {"$interval": _interval_text(value)}
    if isinstance(value, list | tuple):
        return [value_json(v) for v in value]
    return _tagged(value)


def _tagged(value: Any) -> dict[str, str]:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$binary": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return {"$decimal": format(value, "f")}
    if isinstance(value, datetime):
        return {"$timestamp": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, time):
        return {"$time": value.isoformat()}
    raise TypeError(f"a {type(value).__name__} value has no JSON form in a change record")


def _interval_text(value: pa.MonthDayNano) -> str:
    """``P<months>M<days>DT<seconds>S`` (the form the lake writes intervals in)."""
    sign = "-" if value.nanoseconds < 0 else ""
    secs, frac = divmod(abs(value.nanoseconds), 1_000_000_000)
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    return f"P{value.months}M{value.days}DT{sign}{secs}{fraction}S"


_INTERVAL = re.compile(r"^P(-?\d+)M(-?\d+)DT(-?)(\d+)(?:\.(\d{1,9}))?S$")


def _interval(text: str) -> pa.MonthDayNano:
    m = _INTERVAL.match(text)
    if not m:
        raise ValueError("not P<months>M<days>DT<seconds>S")
    months, days, sign, secs, frac = m.groups()
    nanos = int(secs) * 1_000_000_000 + int((frac or "").ljust(9, "0"))
    # The stubs declare a NamedTuple; at runtime MonthDayNano is built from one sequence.
    fields = [int(months), int(days), -nanos if sign else nanos]
    return pa.MonthDayNano(fields)  # type: ignore[call-arg, arg-type]


_DECODERS: dict[str, Callable[[str], Any]] = {
    "$binary": lambda s: base64.b64decode(s, validate=True),
    "$decimal": Decimal,
    "$float": float,
    "$date": date.fromisoformat,
    "$time": time.fromisoformat,
    "$timestamp": datetime.fromisoformat,
    "$interval": _interval,
}


def value_from_json(data: Any) -> Any:
    """The value :func:`value_json` gave ``data`` for (ValueError when malformed)."""
    if isinstance(data, list):
        return [value_from_json(v) for v in data]
    if not isinstance(data, dict):
        return data
    if len(data) != 1:
        raise ValueError(f"a tagged value has one member ({', '.join(_DECODERS)}), not {len(data)}")
    ((tag, text),) = data.items()
    decode = _DECODERS.get(tag)
    if decode is None or not isinstance(text, str):
        raise ValueError(f"{tag!r} with a {type(text).__name__} is not a tagged value")
    try:
        return decode(text)
    except (ValueError, InvalidOperation, TypeError) as exc:
        raise ValueError(f"{tag} {text!r} is malformed ({exc})") from None


def from_json(data: Any) -> ChangeRecord:
    """The record :func:`to_json` gave ``data`` for; a malformed one raises DataError
    naming the member."""
    if not isinstance(data, dict):
        raise DataError("?", f"a change record is a JSON object, not {type(data).__name__}")
    where = f"{data.get('schema', '?')}.{data.get('table', '?')}"
    scalars = [_member(data, name, str, where) for name in _SCALAR_FIELDS]
    if scalars[0] not in get_args(RecordOp):
        raise DataError(where, f"op {scalars[0]!r} is none of {', '.join(get_args(RecordOp))}")
    sequence = _member(data, "sequence", int, where)
    unchanged = _member(data, "unchanged_columns", list, where)
    ddl = data.get("ddl")
    if ddl is not None and not isinstance(ddl, str):
        raise DataError(where, "member ddl is not a string")
    op, schema, table, stamp, position, xid = scalars
    return ChangeRecord(
        cast(RecordOp, op),
        schema,
        table,
        stamp,
        position,
        xid,
        sequence,
        _row_from(data, "key", where) or {},
        _row_from(data, "before", where),
        _row_from(data, "after", where),
        tuple(str(c) for c in unchanged),
        ddl,
    )


def _member(data: dict[str, Any], name: str, kind: type[_V], where: str) -> _V:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataError(where, f"member {name} is missing or not a {kind.__name__}")
    return value


def _row_from(data: dict[str, Any], name: str, where: str) -> dict[str, Any] | None:
    row = data.get(name)
    if row is None:
        return None
    if not isinstance(row, dict):
        raise DataError(where, f"member {name} is not an object")
    try:
        return {str(c): value_from_json(v) for c, v in row.items()}
    except ValueError as exc:
        raise DataError(where, f"member {name}: {exc}") from None


def record_text(record: ChangeRecord) -> str:
    """``record`` as compact JSON text (the body of a message)."""
    return json.dumps(to_json(record), separators=(",", ":"), ensure_ascii=False)


@cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :func:`to_json`'s output (a package data file)."""
    text = resources.files("opendms").joinpath("schemas/change-record.schema.json").read_text()
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ConfigError("opendms/schemas/change-record.schema.json is not a JSON object")
    return loaded


# -- dedup id ---------------------------------------------------------------------------


def record_id(record: ChangeRecord) -> str:
    """A stable id for ``record``: its position in a form that sorts as the positions do,
    ``-``, and its sequence (10 digits). Ids of records of one source sort in the order
    the source committed them (as text), and a record captured again after a restart
    gets the same id, so a broker can drop it as a duplicate.

    Position forms: a PostgreSQL LSN as 16 hex digits (``00000016B374D848``), a binlog
    position as file number and offset (``0000000003.00000000000000001234``; the GTID
    state is left out), a SQLite change-table sequence as 20 digits. Other text is kept
    as it is (unique, but not sortable)."""
    return f"{sortable_position(record.position)}-{record.sequence:010d}"


def sortable_position(text: str) -> str:
    """A position text in a fixed-width form that sorts as the positions do (other
    text as it is)."""
    return ordered_position(text) or text


def ordered_position(text: str) -> str | None:
    """A position text in a fixed-width form that sorts as the positions do; None for a
    form whose text does not sort (a DynamoDB Streams position)."""
    if text.isdigit():
        return f"{SeqPosition.parse(text).value:020d}"
    try:
        if "/" in text:
            return f"{LSN.parse(text).value:016X}"
        binlog = BinlogPosition.parse(text)
    except ConfigError:  # a DynamoDB Streams position, say (its shard ids hold a "/")
        return None
    return f"{binlog.file_number:010d}.{binlog.offset:020d}"


# -- Arrow ------------------------------------------------------------------------------

_ARROW_FIELDS: list[pa.Field[Any]] = [
    pa.field("op", pa.string(), nullable=False),
    pa.field("schema", pa.string(), nullable=False),
    pa.field("table", pa.string(), nullable=False),
    pa.field("commit_time", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("position", pa.string(), nullable=False),
    pa.field("transaction_id", pa.string(), nullable=False),
    pa.field("sequence", pa.int64(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("before", pa.string()),
    pa.field("after", pa.string()),
    pa.field("unchanged_columns", pa.list_(pa.string()), nullable=False),
    pa.field("ddl", pa.string()),
]
ARROW_SCHEMA = pa.schema(_ARROW_FIELDS)
"""The Arrow form's schema. ``key``, ``before`` and ``after`` are JSON text (the objects
:func:`to_json` writes): one batch holds rows of many tables whose columns and types
differ, so no fixed typed column can hold them, and JSON keeps every value exactly."""


def to_arrow(records: Iterable[ChangeRecord]) -> pa.RecordBatch:
    """``records`` as one record batch of :data:`ARROW_SCHEMA`."""
    rows = [to_json(r) for r in records]
    columns: dict[str, list[Any]] = {
        name: [row[name] for row in rows] for name in ARROW_SCHEMA.names
    }
    columns["commit_time"] = [datetime.fromisoformat(t) for t in columns["commit_time"]]
    for name in ("key", "before", "after"):
        columns[name] = [None if v is None else _compact(v) for v in columns[name]]
    arrays = [pa.array(columns[f.name], f.type) for f in ARROW_SCHEMA]
    return pa.RecordBatch.from_arrays(arrays, schema=ARROW_SCHEMA)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
