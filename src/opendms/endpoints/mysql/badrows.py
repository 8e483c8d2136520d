"""Rows events the compiled walker cannot decode, decoded row by row (the slow path).

A rows event holds many rows. When one value in it has no canonical value (a zero date
written under a permissive ``sql_mode``, an enum index beyond its labels, text that is not
valid in its character set, a JSON document the decoder cannot read...), the compiled
walker (``binlog.rowcode.compile_rows``) fails for the whole event, and :func:`decode_rows_slowly`
walks the event again value by value. Each good row becomes the Change the walker makes;
each bad row a Change of the same op and table with ``error`` set to ``column X: why``
and its values as far as they decode (a bad value is carried as it is stored: a date as
MySQL shows it, an enum as its index, text as its bytes), so the task's data errors name
the row by its key. The error policies decide what happens to it (engine/policies.py).

Only the values the walker decodes are decoded here (the key of a before image, unless
the table's changes carry whole old rows), so a row is bad exactly when the walker
could not make its change. If the rows cannot be told apart any more (a column type the
decoder lacks, a value running past the event), the rest of the event is one error
change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from opendms.changes import Change
from opendms.endpoints.mysql.binlog.colcode import compile_column, compile_skip
from opendms.endpoints.mysql.binlog.events import (
    DECODE_ERRORS,
    ROWS_DELETE,
    ROWS_UPDATE,
    ROWS_WRITE,
    U64,
    ZERO_DATE,
    BadValueError,
    Col,
)
from opendms.endpoints.mysql.binlog.rowcode import OPS, bits, key_columns
from opendms.endpoints.mysql.binlog.tablemap import ColumnInfo, TableMapEvent

Decode = Callable[[bytes, int], tuple[Any, int]]


@dataclass(frozen=True)
class _Column:
    """A column's value decoder and skipper; ``problem`` says why one is missing."""

    info: ColumnInfo
    decode: Decode | None
    skip: Callable[[bytes, int], int] | None
    problem: str = ""


def _column(col: ColumnInfo) -> _Column:
    try:
        skip = compile_skip(col)
    except ValueError as exc:
        return _Column(col, None, None, _reason(col, exc))
    try:
        return _Column(col, compile_column(col), skip)
    except ValueError as exc:  # e.g. a character set the decoder lacks
        return _Column(col, None, skip, _reason(col, exc))


def _reason(col: ColumnInfo, exc: Exception) -> str:
    return str(exc).removeprefix(f"column {col.name}: ")


def _columns(tm: TableMapEvent) -> list[_Column]:
    """The table's column decoders, made on its first bad event and kept with it."""
    if tm.slow is None:
        tm.slow = [_column(c) for c in tm.columns]
    columns: list[_Column] = tm.slow
    return columns


@dataclass
class _Image:
    """One decoded row image: values by column index, and the values that failed."""

    values: dict[int, Any]
    problems: list[tuple[str, str]]  # (column, why)


@dataclass(frozen=True)
class _Shape:
    """Which columns a rows event's changes carry (as ``compile_rows`` decides)."""

    tm: TableMapEvent
    kind: int
    before: list[int]  # columns present in the before image (updates, deletes)
    after: list[int]  # ... in the after image (inserts, updates)
    key: list[int]
    old: list[int]  # the whole before image when the table's changes carry old rows

    @classmethod
    def of(cls, tm: TableMapEvent, kind: int, before: int, after: int) -> _Shape:
        present = bits(before) if kind in (ROWS_UPDATE, ROWS_DELETE) else []
        values = bits(after) if kind in (ROWS_WRITE, ROWS_UPDATE) else []
        key = key_columns(tm, present) if present else []
        old = present if tm.old_rows and present != key else []
        return cls(tm, kind, present, values, key, old)

    def names(self, indexes: list[int]) -> tuple[str, ...]:
        return tuple(self.tm.columns[i].name for i in indexes)

    def change(self, old: _Image | None, new: _Image | None) -> Change:
        """The row's Change: as the walker makes it, with ``error`` for a bad row."""
        before, after = (old.values if old else {}), (new.values if new else {})
        problems = [*(old.problems if old else ()), *(new.problems if new else ())]
        return Change(
            OPS[self.kind],
            self.tm.schema,
            self.tm.table,
            self.names(self.after),
            tuple(after[i] for i in self.after),
            self.names(self.key),
            tuple(before[i] for i in self.key),
            error="; ".join(f"column {name}: {why}" for name, why in problems),
            old_columns=self.names(self.old),
            old_values=tuple(before[i] for i in self.old),
        )

    def rest(self, row: int, why: str) -> Change:
        """An error change standing for the rows from ``row`` on, which cannot be found."""
        error = f"{why} (row #{row} and the rows after it in the event cannot be decoded)"
        return Change(OPS[self.kind], self.tm.schema, self.tm.table, error=error)


def decode_rows_slowly(
    tm: TableMapEvent, kind: int, before: int, after: int, buf: bytes, p: int, end: int
) -> list[Change]:
    """The changes of a rows event the walker failed on, one per row (see module doc)."""
    cols, shape = _columns(tm), _Shape.of(tm, kind, before, after)
    out: list[Change] = []
    while p < end:
        change, p = _read_row(cols, shape, buf, p, end)
        if isinstance(change, str):
            out.append(shape.rest(len(out) + 1, change))
            break
        out.append(change)
    return out


def _read_row(
    cols: list[_Column], shape: _Shape, buf: bytes, p: int, end: int
) -> tuple[Change | str, int]:
    """The change of the row at ``p``, or why its images cannot be delimited."""
    images: list[_Image | None] = []
    for present, wanted in ((shape.before, {*shape.key, *shape.old}), (shape.after, None)):
        if not present:
            images.append(None)
            continue
        image, p = _read_image(cols, present, wanted or set(present), buf, p, end)
        if isinstance(image, str):
            return image, p
        images.append(image)
    return shape.change(*images), p


def _read_image(
    cols: list[_Column], present: list[int], wanted: set[int], buf: bytes, p: int, end: int
) -> tuple[_Image | str, int]:
    """One row image at ``p``: its ``wanted`` values decoded, the others skipped; why
    (a string) when its values cannot be delimited."""
    nbytes = (len(present) + 7) // 8
    nulls = int.from_bytes(buf[p : p + nbytes], "little")
    p += nbytes
    image = _Image({}, [])
    for bit, i in enumerate(present):
        col = cols[i]
        if col.info.nullable and nulls >> bit & 1:
            image.values[i] = None
            continue
        if col.skip is None:
            return f"column {col.info.name}: {col.problem}", p
        name = col.info.name
        try:
            q = _read_value(col, image, i, buf, p) if i in wanted else col.skip(buf, p)
        except DECODE_ERRORS as exc:
            return f"column {name}: {type(exc).__name__}: {exc}", p
        if q > end:
            return f"column {name}: its value runs past the end of the event", p
        p = q
    return image, p


def _read_value(col: _Column, image: _Image, i: int, buf: bytes, p: int) -> int:
    """Decode one value into ``image`` (its stored form and a problem when it has no
    canonical value); the position after it. Raises when it cannot even be skipped."""
    assert col.skip is not None
    if col.decode is not None:
        try:
            image.values[i], q = col.decode(buf, p)
            return q
        except DECODE_ERRORS as exc:
            problem = value_problem(col.info, buf, p, exc)
    else:
        problem = col.problem
    q = col.skip(buf, p)
    image.values[i] = stored_value(col.info, buf, p)
    image.problems.append((col.info.name, problem))
    return q


def value_problem(col: ColumnInfo, buf: bytes, pos: int, exc: Exception) -> str:
    """Why one stored value has no canonical value, in words."""
    if isinstance(exc, BadValueError):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"text is not valid {col.charset} ({exc.reason})"
    if col.type in (Col.DATE, Col.NEWDATE, Col.DATETIME2, Col.DATETIME):
        return ZERO_DATE if _zero_date(col, buf, pos) else f"invalid date ({exc})"
    if col.type == Col.ENUM:
        return "enum value index out of range"
    return f"{type(exc).__name__}: {exc}"


def _zero_date(col: ColumnInfo, buf: bytes, pos: int) -> bool:
    month, day = _ymd(col, buf, pos)[1:3]
    return not month or not day


def _ymd(col: ColumnInfo, buf: bytes, pos: int) -> tuple[int, ...]:
    """(year, month, day, hour, minute, second) of a stored DATE / DATETIME(2)."""
    if col.type in (Col.DATE, Col.NEWDATE):
        t = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        return (t >> 9, t >> 5 & 15, t & 31, 0, 0, 0)
    if col.type == Col.DATETIME2:
        t = int.from_bytes(buf[pos : pos + 5], "big") - 0x8000000000
        ym = t >> 22
        return (ym // 13, ym % 13, t >> 17 & 31, t >> 12 & 31, t >> 6 & 63, t & 63)
    day, clock = divmod(U64(buf, pos)[0], 1000000)
    return (
        day // 10000,
        day // 100 % 100,
        day % 100,
        clock // 10000,
        clock // 100 % 100,
        clock % 100,
    )


def stored_value(col: ColumnInfo, buf: bytes, pos: int) -> Any:
    """A value without a canonical value as it is stored (for the data errors): a date
    as MySQL shows it, an enum as its index, BIT as a number, text or JSON as its bytes."""
    try:
        if col.type in (Col.DATE, Col.NEWDATE):
            return "{:04}-{:02}-{:02}".format(*_ymd(col, buf, pos)[:3])
        if col.type in (Col.DATETIME2, Col.DATETIME):
            return "{:04}-{:02}-{:02} {:02}:{:02}:{:02}".format(*_ymd(col, buf, pos))
        if col.type in (Col.TIMESTAMP2, Col.TIMESTAMP):
            return "0000-00-00 00:00:00"
        if col.type == Col.ENUM:
            return int.from_bytes(buf[pos : pos + col.meta], "little")
        if col.type == Col.BIT:  # meta: (bits in the last byte) << 8 | whole bytes
            size = (col.meta & 0xFF) + bool(col.meta >> 8)
            return int.from_bytes(buf[pos : pos + size], "big")
        typ = Col.BLOB if col.type == Col.JSON else col.type
        return compile_column(replace(col, type=typ, charset="binary", ctype=None))(buf, pos)[0]
    except (*DECODE_ERRORS, BadValueError):
        return None
