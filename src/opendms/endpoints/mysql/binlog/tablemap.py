"""TABLE_MAP events: the column types, metadata, names and key of a table.

:func:`parse_table_map` reads a TABLE_MAP body into a :class:`TableMapEvent` of
:class:`ColumnInfo` (the real type of each column, its metadata, character set,
ENUM/SET labels), including the optional metadata that ``binlog_row_metadata=FULL``
adds (names, signedness, character sets, primary key). The row decoders compiled
for a table are kept on its TableMapEvent (``rowcode.rows_fn``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opendms.changes import Change
from opendms.endpoints.mysql.binlog.events import (
    CHARACTER,
    CODECS,
    DEFAULT_CHARSETS,
    NUMERIC,
    ONE_BYTE_META,
    TWO_BYTE_META,
    Col,
    lenenc,
    lenenc_bytes,
)
from opendms.model import ColumnType


@dataclass(frozen=True)
class ColumnInfo:
    """One column as a TABLE_MAP event describes it.

    ``type`` is the real type (ENUM / SET rather than STRING); ``meta`` the
    type's metadata (max length, precision << 8 | scale, fsp, length bytes...);
    ``length`` the byte length of CHAR/BINARY; ``charset`` the character set
    name of text columns ("binary" for byte strings, "" when not text).
    """

    name: str
    type: int
    meta: int = 0
    unsigned: bool = False
    charset: str = ""
    labels: tuple[str, ...] = ()
    nullable: bool = True
    length: int = 0
    ctype: ColumnType | None = None  # canonical type from the catalog, when known


@dataclass
class TableMapEvent:
    """A table definition from a TABLE_MAP event, with its compiled row decoders."""

    table_id: int
    schema: str
    table: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[int, ...] = ()
    has_names: bool = True
    old_rows: bool = False  # decode whole before images (else only their key columns)
    # the compiled walkers by (rows kind, before image, after image): rowcode.rows_fn
    walkers: dict[tuple[int, int, int], RowsFn] = field(default_factory=dict, repr=False)
    slow: Any = field(default=None, repr=False, compare=False)  # badrows' column decoders

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


# A compiled walker: (buffer, first row, end of rows, changes out) -> where it stopped.
RowsFn = Callable[[bytes, int, int, list[Change]], int]


@dataclass
class _RawMap:
    table_id: int
    schema: str
    table: str
    types: bytes
    meta_block: bytes
    nullable: int
    optional: bytes


def split_table_map(buf: bytes, pos: int, end: int) -> _RawMap:
    """The fixed parts of a TABLE_MAP body starting at ``pos`` (the table id)."""
    table_id = int.from_bytes(buf[pos : pos + 6], "little")
    p = pos + 8
    size = buf[p]
    schema = buf[p + 1 : p + 1 + size].decode("utf-8", "surrogateescape")
    p += size + 2
    size = buf[p]
    table = buf[p + 1 : p + 1 + size].decode("utf-8", "surrogateescape")
    p += size + 2
    count, p = lenenc(buf, p)
    types = buf[p : p + count]
    meta_block, p = lenenc_bytes(buf, p + count)
    nbytes = (count + 7) // 8
    nullable = int.from_bytes(buf[p : p + nbytes], "little")
    p += nbytes
    return _RawMap(table_id, schema, table, types, meta_block, nullable, buf[p:end])


def _column_meta(types: bytes, block: bytes) -> list[tuple[int, int, int]]:
    """(real type, meta, byte length) per column from the metadata block."""
    out: list[tuple[int, int, int]] = []
    p = 0
    for typ in types:
        if typ in ONE_BYTE_META:
            out.append((typ, block[p], 0))
            p += 1
        elif typ == Col.STRING or typ in (Col.ENUM, Col.SET):
            out.append(_string_meta(block[p], block[p + 1]))
            p += 2
        elif typ in (Col.VARCHAR, Col.VAR_STRING, Col.VARCHAR_COMPRESSED):
            out.append((typ, block[p] | block[p + 1] << 8, 0))
            p += 2
        elif typ in TWO_BYTE_META:  # BIT: (bits, bytes); NEWDECIMAL: (precision, scale)
            out.append((typ, block[p] << 8 | block[p + 1], 0))
            p += 2
        else:
            out.append((typ, 0, 0))
    return out


def _string_meta(first: int, second: int) -> tuple[int, int, int]:
    """STRING metadata packs the real type (ENUM, SET, STRING) and a 10-bit length."""
    if first in (Col.ENUM, Col.SET):
        return first, second, second  # meta = pack length (bytes)
    if first & 0x30 != 0x30:
        length = second | ((first & 0x30) ^ 0x30) << 4
        return first | 0x30, length, length
    return first, second, second


@dataclass
class _Optional:
    signed: list[bool] = field(default_factory=list)  # unsigned flags of numeric columns
    charsets: list[int] = field(default_factory=list)  # per character column
    enum_set_charsets: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    enum_labels: list[list[bytes]] = field(default_factory=list)
    set_labels: list[list[bytes]] = field(default_factory=list)
    primary_key: list[int] = field(default_factory=list)
    default_charset: tuple[int, dict[int, int]] | None = None
    default_enum_charset: tuple[int, dict[int, int]] | None = None


def _read_optional(data: bytes) -> _Optional:
    """The TLV optional metadata (binlog_row_metadata=FULL)."""
    out = _Optional()
    p = 0
    while p < len(data):
        kind = data[p]
        size, p = lenenc(data, p + 1)
        value, p = data[p : p + size], p + size
        _OPTIONAL_READERS.get(kind, _skip_optional)(out, value)
    return out


def _skip_optional(out: _Optional, value: bytes) -> None:
    return None


def _read_signedness(out: _Optional, value: bytes) -> None:
    out.signed = [bool(value[i // 8] & (0x80 >> i % 8)) for i in range(len(value) * 8)]


def _read_ints(value: bytes) -> list[int]:
    out, p = [], 0
    while p < len(value):
        n, p = lenenc(value, p)
        out.append(n)
    return out


def _read_default(value: bytes) -> tuple[int, dict[int, int]]:
    ints = _read_ints(value)
    return ints[0], dict(zip(ints[1::2], ints[2::2], strict=True))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _read_strings(value: bytes) -> list[bytes]:
    out, p = [], 0
    while p < len(value):
        text, p = lenenc_bytes(value, p)
        out.append(text)
    return out


def _read_labels(value: bytes) -> list[list[bytes]]:
    out, p = [], 0
    while p < len(value):
        count, p = lenenc(value, p)
        labels = []
        for _ in range(count):
            text, p = lenenc_bytes(value, p)
            labels.append(text)
        out.append(labels)
    return out


def _set_field(name: str, reader: Callable[[bytes], Any]) -> Callable[[_Optional, bytes], None]:
    def read(out: _Optional, value: bytes) -> None:
        setattr(out, name, reader(value))

    return read


def _read_pk_prefix(value: bytes) -> list[int]:
    return _read_ints(value)[0::2]


_OPTIONAL_READERS: dict[int, Callable[[_Optional, bytes], None]] = {
    1: _read_signedness,
    2: _set_field("default_charset", _read_default),
    3: _set_field("charsets", _read_ints),
    4: _set_field(
        "names", lambda v: [s.decode("utf-8", "surrogateescape") for s in _read_strings(v)]
    ),
    5: _set_field("set_labels", _read_labels),
    6: _set_field("enum_labels", _read_labels),
    8: _set_field("primary_key", _read_ints),
    9: _set_field("primary_key", _read_pk_prefix),
    10: _set_field("default_enum_charset", _read_default),
    11: _set_field("enum_set_charsets", _read_ints),
}


def _expand_charsets(
    explicit: list[int], default: tuple[int, dict[int, int]] | None, count: int
) -> list[int]:
    if explicit:
        return explicit
    if default is None:
        return []
    base, exceptions = default
    return [exceptions.get(i, base) for i in range(count)]


def parse_table_map(
    buf: bytes,
    pos: int,
    end: int,
    *,
    mariadb: bool = True,
    charsets: dict[int, str] | None = None,
    ctypes: dict[str, ColumnType] | None = None,
) -> TableMapEvent:
    """A TABLE_MAP event body (``buf[pos:end]``, from the table id) as a TableMapEvent.

    ``mariadb``: GEOMETRY columns carry a character set there (not on MySQL).
    ``ctypes``: canonical types from the catalog by column name, for types the
    binlog cannot tell apart (MariaDB UUID looks like BINARY(16)).
    """
    raw = split_table_map(buf, pos, end)
    metas = _column_meta(raw.types, raw.meta_block)
    opt = _read_optional(raw.optional)
    character = [_is_character(t, mariadb) for t, _m, _l in metas]
    enum_set = [t in (Col.ENUM, Col.SET) for t, _m, _l in metas]
    text_ids = iter(_expand_charsets(opt.charsets, opt.default_charset, sum(character)))
    enum_ids = iter(
        _expand_charsets(opt.enum_set_charsets, opt.default_enum_charset, sum(enum_set))
    )
    signs = iter(opt.signed)
    enums, sets = iter(opt.enum_labels), iter(opt.set_labels)
    names = opt.names or [f"@{i + 1}" for i in range(len(metas))]
    table = charsets or DEFAULT_CHARSETS
    columns = []
    for i, (typ, meta, length) in enumerate(metas):
        unsigned = next(signs, False) if typ in NUMERIC else False
        charset = ""
        labels: list[bytes] = []
        if character[i]:
            charset = table.get(next(text_ids, 63), "utf8mb4")
        if enum_set[i]:
            charset = table.get(next(enum_ids, 45), "utf8mb4")
            labels = next(enums if typ == Col.ENUM else sets, [])
        codec = CODECS.get(charset) or "utf-8"
        columns.append(
            ColumnInfo(
                name=names[i],
                type=typ,
                meta=meta,
                unsigned=unsigned,
                charset=charset,
                labels=tuple(lb.decode(codec, "replace") for lb in labels),
                nullable=bool(raw.nullable >> i & 1),
                length=length,
                ctype=(ctypes or {}).get(names[i]),
            )
        )
    return TableMapEvent(
        raw.table_id, raw.schema, raw.table, tuple(columns), tuple(opt.primary_key), bool(opt.names)
    )


def _is_character(typ: int, mariadb: bool) -> bool:
    return typ in CHARACTER or (mariadb and typ == Col.GEOMETRY)


# ----------------------------------------------------------------------------- row decoders
#
# A rows event holds, per row, one image (insert, delete) or two (update): a
# null bitmap over the columns present in the image, then the non-null values.
# compile_rows() generates the source of one function walking all rows of an
# event for one table definition, each column's decoding inlined.
