"""The generated decoder of each column type: :func:`column_code`.

For each binlog column type, the source that decodes one non-null value (inlined
by ``rowcode`` into the walker of a whole rows event) and the source that skips
it. :func:`compile_column` and :func:`compile_skip` make one column's decoder and
skipper on their own: the slow path (``badrows``) that finds which value is bad.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from opendms.endpoints.mysql.binlog.codegen import (
    Code,
    Gen,
    build,
    compile_value,
    decimal_code,
    fixed,
    number,
    variable,
)
from opendms.endpoints.mysql.binlog.events import BLOBS, CODECS, Col
from opendms.endpoints.mysql.binlog.jsonb import mysql_json_text
from opendms.endpoints.mysql.binlog.runtime import BASE_NS
from opendms.endpoints.mysql.binlog.tablemap import ColumnInfo
from opendms.model import Kind

# The globals of the generated column and row decoders.
NAMESPACE: dict[str, Any] = {**BASE_NS, "_json": mysql_json_text}


def _int_code(col: ColumnInfo) -> Code:
    unsigned = col.unsigned
    if col.type == Col.INT24:
        sign = "False" if unsigned else "True"
        return fixed(3, f"{{o}} = int.from_bytes(b[p:p + 3], 'little', signed={sign})")
    fmt = {Col.TINY: "b", Col.SHORT: "h", Col.LONG: "i", Col.LONGLONG: "q"}[col.type]
    if not unsigned:
        return number(fmt)
    # BIGINT UNSIGNED is DECIMAL(20,0) in the canonical types
    return number(fmt.upper(), "_D({x})" if col.type == Col.LONGLONG else "{x}")


_FRAC_EXPR = {
    0: "",
    1: "b[{o}] * 10000",
    2: "(b[{o}] << 8 | b[{o} + 1]) * 100",
    3: "(b[{o}] << 16 | b[{o} + 1] << 8 | b[{o} + 2])",
}


def _frac(fsp: int, offset: str) -> tuple[int, str]:
    """(bytes, microseconds expression) of a fractional-seconds part at ``offset``."""
    nbytes = (fsp + 1) // 2
    return nbytes, _FRAC_EXPR[nbytes].replace("{o}", offset)


def _datetime2_code(col: ColumnInfo) -> Code:
    """DATETIME2: 5 big-endian bytes (sign, year*13+month, day, hour, minute, second)."""
    nbytes, micros = _frac(col.meta, "p + 5")
    extra = f", {micros}" if nbytes else ""
    return fixed(
        5 + nbytes,
        "t = int.from_bytes(b[p:p + 5], 'big') - 0x8000000000",
        "ym = t >> 22",
        f"{{o}} = _dt(ym // 13, ym % 13, t >> 17 & 31, t >> 12 & 31, t >> 6 & 63, t & 63{extra})",
    )


def _timestamp2_code(col: ColumnInfo) -> Code:
    nbytes, micros = _frac(col.meta, "p + 4")
    return fixed(4 + nbytes, f"{{o}} = _ts(_U32BE(b, p)[0], {micros or 0})")


def _date_code(col: ColumnInfo) -> Code:
    return fixed(
        3,
        "t = b[p] | b[p + 1] << 8 | b[p + 2] << 16",
        "{o} = _date(t >> 9, t >> 5 & 15, t & 31)",
    )


def _time2_code(col: ColumnInfo) -> Code:
    return fixed(3 + (col.meta + 1) // 2, f"{{o}} = _time2(b, p, {col.meta})")


def _bit_code(col: ColumnInfo) -> Code:
    bits, whole = col.meta >> 8, col.meta & 0xFF
    size = whole + (1 if bits else 0)
    value = f"int.from_bytes(b[p:p + {size}], 'big')"
    if whole * 8 + bits == 1:
        return fixed(size, f"{{o}} = {value} != 0")
    return fixed(size, f"{{o}} = _bit({value})")


def _enum_code(col: ColumnInfo, gen: Gen) -> Code:
    labels = gen.const(("", *col.labels))  # index 0: the empty "error" value
    if col.meta == 1:
        return fixed(1, f"{{o}} = {labels}[b[p]]")
    return fixed(2, f"{{o}} = {labels}[_U16(b, p)[0]]")


def _set_code(col: ColumnInfo, gen: Gen) -> Code:
    labels = gen.const(col.labels)
    size = col.meta
    return fixed(size, f"{{o}} = _set({labels}, int.from_bytes(b[p:p + {size}], 'little'))")


def _text_convert(col: ColumnInfo, compressed: bool = False) -> str:
    """Bytes -> canonical value: str in the column charset, or bytes for binary."""
    raw = "_unc({raw})" if compressed else "{raw}"
    if col.ctype is not None and col.ctype.kind is Kind.UUID and col.length == 16:
        return f"_uuid({raw})"
    if col.charset == "binary":
        if col.type == Col.STRING and col.length:  # BINARY(n): trailing zeros are not logged
            return f"{raw}.ljust({col.length}, b'\\x00')"
        return raw
    codec = CODECS.get(col.charset, "")
    if codec is None:
        return raw
    if not codec:
        raise ValueError(f"column {col.name}: character set {col.charset!r} is not supported")
    return f"{raw}.decode()" if codec == "utf-8" else f"{raw}.decode({codec!r})"


def _string_code(col: ColumnInfo) -> Code:
    if col.type in (Col.VARCHAR, Col.VAR_STRING, Col.VARCHAR_COMPRESSED):
        lenbytes = 1 if col.meta < 256 else 2
        return variable(lenbytes, _text_convert(col, col.type == Col.VARCHAR_COMPRESSED))
    if col.type == Col.STRING:
        return variable(1 if col.length < 256 else 2, _text_convert(col))
    if col.type == Col.JSON:
        return variable(col.meta, "_json({raw})")
    if col.type == Col.GEOMETRY:
        return variable(col.meta, "{raw}")
    return variable(col.meta, _text_convert(col, col.type == Col.BLOB_COMPRESSED))


def column_code(col: ColumnInfo, gen: Gen) -> Code:
    """The decode/skip source of one column's non-null value."""
    typ = col.type
    simple = _SIMPLE_CODE.get(typ)
    if simple is not None:
        return simple(col)
    if typ == Col.NEWDECIMAL:
        return decimal_code(col, gen)
    if typ == Col.ENUM:
        return _enum_code(col, gen)
    if typ == Col.SET:
        return _set_code(col, gen)
    if typ in _VARIABLE_TYPES:
        return _string_code(col)
    raise ValueError(f"column {col.name}: binlog column type {typ} is not supported")


_VARIABLE_TYPES = BLOBS | {
    Col.VARCHAR,
    Col.VAR_STRING,
    Col.VARCHAR_COMPRESSED,
    Col.STRING,
    Col.JSON,
    Col.GEOMETRY,
}
_SIMPLE_CODE: dict[int, Callable[[ColumnInfo], Code]] = {
    Col.TINY: _int_code,
    Col.SHORT: _int_code,
    Col.INT24: _int_code,
    Col.LONG: _int_code,
    Col.LONGLONG: _int_code,
    Col.FLOAT: lambda c: number("f"),
    Col.DOUBLE: lambda c: number("d"),
    Col.YEAR: lambda c: number("B", "_YEAR[{x}]"),
    Col.NULL: lambda c: fixed(0, "{o} = None"),
    Col.DATE: _date_code,
    Col.NEWDATE: _date_code,
    Col.DATETIME2: _datetime2_code,
    Col.TIMESTAMP2: _timestamp2_code,
    Col.TIME2: _time2_code,
    Col.TIMESTAMP: lambda c: fixed(4, "{o} = _ts(_U32(b, p)[0], 0)"),
    Col.DATETIME: lambda c: fixed(8, "{o} = _old_dt(_U64(b, p)[0])"),
    Col.TIME: lambda c: fixed(
        3, "{o} = _old_time(int.from_bytes(b[p:p + 3], 'little', signed=True))"
    ),
    Col.BIT: _bit_code,
}


def compile_column(col: ColumnInfo) -> Callable[[bytes, int], tuple[Any, int]]:
    """One column's decoder ``(buf, pos) -> (value, next pos)``: the slow path that
    finds which value of a failing row is bad."""
    gen = Gen(NAMESPACE)
    return compile_value(column_code(col, gen), gen, col.name)


def compile_skip(col: ColumnInfo) -> Callable[[bytes, int], int]:
    """One column's skipper ``(buf, pos) -> next pos`` (its value is not decoded, so
    its character set does not matter); ValueError for a type the decoder lacks."""
    gen = Gen(NAMESPACE)
    code = column_code(replace(col, charset="binary", ctype=None), gen)
    gen.emit(0, "def skip(b, p):")
    gen.emit(1, *code.skip, "return p")
    return build(gen, "skip", col.name)  # type: ignore[no-any-return]
