"""Decoder of MySQL/MariaDB binlog events into opendms transactions (no I/O).

:class:`BinlogDecoder` takes the events of a binlog stream one by one (bytes as
the server sends them: 19-byte header, body, optional CRC32) and returns a
:class:`~opendms.cdc.Transaction` at each commit. Row values come out in the
canonical Python form of the column's canonical type (what the full load gives).

Speed is the point of this module: a rows event holds dozens of rows, so when a
TABLE_MAP arrives the decoder generates (once per table definition) a Python
function that walks every row of a rows event with the column decoders inlined:
no per-value dispatch, no per-row dicts, and only the key columns of a before
image are decoded (the other values are skipped by length) unless the table's
changes must carry their old rows (``old_rows``: the lake, source filters).
"""

from __future__ import annotations

import codecs
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal
from typing import Any

import pyarrow as pa

from opendms.cdc import BinlogPosition, Change, ColumnChange, Op, Transaction
from opendms.endpoints.mysql.types import from_mysql
from opendms.endpoints.mysql.values import time_interval
from opendms.errors import DecodeError, TaskError
from opendms.model import ColumnType, Kind

ZERO_DATE = "MySQL zero date (a zero month or day) has no value on other engines"

# ----------------------------------------------------------------------------- constants

HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, event size, log_pos, flags
HEADER_LEN = 19
ARTIFICIAL = 0x20  # LOG_EVENT_ARTIFICIAL_F: made up by the server (fake rotate)


class Ev:
    """Binlog event type codes (MySQL and MariaDB)."""

    QUERY = 2
    STOP = 3
    ROTATE = 4
    FORMAT_DESCRIPTION = 15
    XID = 16
    TABLE_MAP = 19
    WRITE_V1 = 23
    UPDATE_V1 = 24
    DELETE_V1 = 25
    HEARTBEAT = 27
    WRITE_V2 = 30
    UPDATE_V2 = 31
    DELETE_V2 = 32
    GTID_LOG = 33  # MySQL
    ANONYMOUS_GTID = 34
    XA_PREPARE = 38
    PARTIAL_UPDATE = 39
    TRANSACTION_PAYLOAD = 40
    HEARTBEAT_V2 = 41
    ANNOTATE_ROWS = 160  # MariaDB
    BINLOG_CHECKPOINT = 161
    GTID = 162
    GTID_LIST = 163
    QUERY_COMPRESSED = 165
    WRITE_COMPRESSED_V1 = 166
    UPDATE_COMPRESSED_V1 = 167
    DELETE_COMPRESSED_V1 = 168


class Col:
    """Column type codes in TABLE_MAP events."""

    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    NEWDATE = 14
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17
    DATETIME2 = 18
    TIME2 = 19
    BLOB_COMPRESSED = 140  # MariaDB compressed columns
    VARCHAR_COMPRESSED = 141
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


_NUMERIC = {
    Col.TINY,
    Col.SHORT,
    Col.INT24,
    Col.LONG,
    Col.LONGLONG,
    Col.NEWDECIMAL,
    Col.FLOAT,
    Col.DOUBLE,
    Col.YEAR,
}
_BLOBS = {Col.TINY_BLOB, Col.MEDIUM_BLOB, Col.LONG_BLOB, Col.BLOB, Col.BLOB_COMPRESSED}
_ONE_BYTE_META = _BLOBS | {
    Col.FLOAT,
    Col.DOUBLE,
    Col.GEOMETRY,
    Col.JSON,
    Col.TIMESTAMP2,
    Col.DATETIME2,
    Col.TIME2,
}
_TWO_BYTE_META = {
    Col.VARCHAR,
    Col.VAR_STRING,
    Col.VARCHAR_COMPRESSED,
    Col.BIT,
    Col.NEWDECIMAL,
    Col.STRING,
    Col.ENUM,
    Col.SET,
    Col.DECIMAL,
}
_CHARACTER = {Col.STRING, Col.VAR_STRING, Col.VARCHAR, Col.VARCHAR_COMPRESSED} | _BLOBS

# Collation id -> character set, for the collations met in practice; the capture
# passes the server's full table (information_schema.COLLATIONS).
DEFAULT_CHARSETS: dict[int, str] = {
    8: "latin1",
    11: "ascii",
    33: "utf8mb3",
    45: "utf8mb4",
    46: "utf8mb4",
    47: "latin1",
    48: "latin1",
    49: "latin1",
    63: "binary",
    65: "ascii",
    83: "utf8mb3",
    255: "utf8mb4",
    **{i: "utf8mb3" for i in range(192, 224)},
    **{i: "utf8mb4" for i in range(224, 248)},
    **{i: "utf8mb4" for i in range(256, 324)},
}

# MySQL character set -> Python codec (None: binary, values are bytes).
CODECS: dict[str, str | None] = {
    "binary": None,
    "utf8mb4": "utf-8",
    "utf8mb3": "utf-8",
    "utf8": "utf-8",
    "latin1": "mysql_latin1",  # Windows-1252, see below
    "ascii": "ascii",
    "ucs2": "utf-16-be",
    "utf16": "utf-16-be",
    "utf16le": "utf-16-le",
    "utf32": "utf-32-be",
    "latin2": "iso8859-2",
    "latin5": "iso8859-9",
    "latin7": "iso8859-13",
    "greek": "iso8859-7",
    "hebrew": "iso8859-8",
    "koi8r": "koi8-r",
    "koi8u": "koi8-u",
    "cp1250": "cp1250",
    "cp1251": "cp1251",
    "cp1256": "cp1256",
    "cp1257": "cp1257",
    "cp850": "cp850",
    "cp852": "cp852",
    "cp866": "cp866",
    "cp932": "cp932",
    "sjis": "shift_jis",
    "ujis": "euc_jp",
    "eucjpms": "euc_jp",
    "euckr": "euc_kr",
    "gb2312": "gb2312",
    "gbk": "gbk",
    "gb18030": "gb18030",
    "big5": "big5",
    "tis620": "tis-620",
    "macroman": "mac-roman",
    "macce": "mac-latin2",
}


# MySQL's latin1 is Windows-1252 with the five bytes cp1252 leaves undefined (0x81, 0x8D,
# 0x8F, 0x90, 0x9D) mapped to the control characters of the same number, as the server
# converts them (the full load gets them so): every byte is a character.
_LATIN1 = "".join(bytes([b]).decode("cp1252", "ignore") or chr(b) for b in range(256))
_LATIN1_ENCODING = codecs.charmap_build(_LATIN1)


def _latin1_codec(name: str) -> codecs.CodecInfo | None:
    if name != "mysql_latin1":
        return None
    return codecs.CodecInfo(
        name="mysql_latin1",
        encode=lambda text, errors="strict": codecs.charmap_encode(text, errors, _LATIN1_ENCODING),
        decode=lambda data, errors="strict": codecs.charmap_decode(data, errors, _LATIN1),
    )


codecs.register(_latin1_codec)

# ----------------------------------------------------------------------------- small readers


def lenenc(buf: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at ``pos``: (value, position after it)."""
    first = buf[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        return buf[pos + 1] | buf[pos + 2] << 8, pos + 3
    if first == 0xFD:
        return int.from_bytes(buf[pos + 1 : pos + 4], "little"), pos + 4
    return int.from_bytes(buf[pos + 1 : pos + 9], "little"), pos + 9


def _lenenc_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = lenenc(buf, pos)
    return buf[pos : pos + size], pos + size


def uncompress(data: bytes) -> bytes:
    """MariaDB's compressed binlog/column format: a header byte (bit 7: compressed,
    bits 0-2: bytes of the original length, bit 3: raw deflate) then zlib data."""
    if not data:
        return data
    head = data[0]
    if not head & 0x80:
        return data[1:]
    lenlen = head & 0x07
    size = int.from_bytes(data[1 : 1 + lenlen], "big") if lenlen else MAX_UNCOMPRESSED
    if size > MAX_UNCOMPRESSED:
        raise ValueError(f"compressed data claims {size} bytes (more than MySQL sends)")
    wbits = -15 if head & 0x08 else 15
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data[1 + lenlen :], size + 1)  # never more than it claims
    if len(out) > size or (lenlen and len(out) != size):
        raise ValueError(f"compressed data gives {len(out)}+ bytes, not the {size} it claims")
    return out


MAX_UNCOMPRESSED = 1 << 30  # max_allowed_packet's ceiling: no event or value is larger


class BadValueError(ValueError):
    """A stored value that has no canonical value (zero date, BIT beyond 63 bits...)."""


# ----------------------------------------------------------------------------- value helpers

_U16 = struct.Struct("<H").unpack_from
_I16 = struct.Struct("<h").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_I64 = struct.Struct("<q").unpack_from
_F32 = struct.Struct("<f").unpack_from
_F64 = struct.Struct("<d").unpack_from
_U32BE = struct.Struct(">I").unpack_from
_S8 = tuple(i - 256 if i > 127 else i for i in range(256))
_YEAR = (0, *(1900 + i for i in range(1, 256)))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CTX = Context(prec=100)  # exact for any MySQL DECIMAL (65 digits)
_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def _timestamp(seconds: int, micros: int) -> datetime:
    if not seconds and not micros:
        raise BadValueError(ZERO_DATE)
    return _EPOCH + timedelta(0, seconds, micros)


def _time2(buf: bytes, pos: int, fsp: int) -> pa.MonthDayNano:
    """TIME2: 3 bytes (sign, hour, minute, second) + fraction, big-endian."""
    nfrac = (fsp + 1) // 2
    intpart = int.from_bytes(buf[pos : pos + 3], "big") - 0x800000
    if nfrac == 0:
        packed = intpart << 24
    elif nfrac == 1:
        frac = buf[pos + 3]
        if intpart < 0 and frac:
            intpart, frac = intpart + 1, frac - 0x100
        packed = (intpart << 24) + frac * 10000
    elif nfrac == 2:
        frac = buf[pos + 3] << 8 | buf[pos + 4]
        if intpart < 0 and frac:
            intpart, frac = intpart + 1, frac - 0x10000
        packed = (intpart << 24) + frac * 100
    else:
        packed = int.from_bytes(buf[pos : pos + 6], "big") - 0x800000000000
    return _packed_time(packed)


def _packed_time(packed: int) -> pa.MonthDayNano:
    """A packed TIME (sign, 10-bit hour, minute, second, microseconds) as an interval:
    MySQL TIME is a signed duration of up to 838:59:59."""
    magnitude = abs(packed)
    hms, micros = magnitude >> 24, magnitude & 0xFFFFFF
    seconds = ((hms >> 12 & 0x3FF) * 60 + (hms >> 6 & 63)) * 60 + (hms & 63)
    total = seconds * 1_000_000 + micros
    return time_interval(-total if packed < 0 else total)


def _old_time(value: int) -> pa.MonthDayNano:
    """Pre-5.6 TIME: the signed integer [-]HHHMMSS."""
    hours, rest = divmod(abs(value), 10000)
    seconds = (hours * 60 + rest // 100) * 60 + rest % 100
    return time_interval(-seconds * 1_000_000 if value < 0 else seconds * 1_000_000)


def _old_datetime(value: int) -> datetime:
    """Pre-5.6 DATETIME: the integer YYYYMMDDhhmmss."""
    day, clock = divmod(value, 1000000)
    return datetime(
        day // 10000, day // 100 % 100, day % 100, clock // 10000, clock // 100 % 100, clock % 100
    )


def _set_text(labels: tuple[str, ...], bits: int) -> str:
    return ",".join(label for i, label in enumerate(labels) if bits >> i & 1)


def _uuid_text(raw: bytes) -> str:
    h = raw.ljust(16, b"\x00").hex()  # trailing zero bytes are not logged
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _bit_int(value: int) -> int:
    if value >> 63:
        raise BadValueError(f"BIT value {value} does not fit a 64-bit signed integer")
    return value


# ----------------------------------------------------------------------------- TABLE_MAP


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
class TableMap:
    """A table definition from a TABLE_MAP event, with its compiled row decoders."""

    table_id: int
    schema: str
    table: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[int, ...] = ()
    has_names: bool = True
    old_rows: bool = False  # decode whole before images (else only their key columns)
    _rows: dict[tuple[int, int, int], RowsFn] = field(default_factory=dict, repr=False)
    slow: Any = field(default=None, repr=False, compare=False)  # badrows' column decoders

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"

    def rows_fn(self, kind: int, before: int, after: int) -> RowsFn:
        """The compiled walker of one rows event kind for these column images."""
        key = (kind, before, after)
        fn = self._rows.get(key)
        if fn is None:
            fn = self._rows[key] = compile_rows(self, kind, before, after)
        return fn


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
    meta_block, p = _lenenc_bytes(buf, p + count)
    nbytes = (count + 7) // 8
    nullable = int.from_bytes(buf[p : p + nbytes], "little")
    p += nbytes
    return _RawMap(table_id, schema, table, types, meta_block, nullable, buf[p:end])


def _column_meta(types: bytes, block: bytes) -> list[tuple[int, int, int]]:
    """(real type, meta, byte length) per column from the metadata block."""
    out: list[tuple[int, int, int]] = []
    p = 0
    for typ in types:
        if typ in _ONE_BYTE_META:
            out.append((typ, block[p], 0))
            p += 1
        elif typ == Col.STRING or typ in (Col.ENUM, Col.SET):
            out.append(_string_meta(block[p], block[p + 1]))
            p += 2
        elif typ in (Col.VARCHAR, Col.VAR_STRING, Col.VARCHAR_COMPRESSED):
            out.append((typ, block[p] | block[p + 1] << 8, 0))
            p += 2
        elif typ in _TWO_BYTE_META:  # BIT: (bits, bytes); NEWDECIMAL: (precision, scale)
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
        text, p = _lenenc_bytes(value, p)
        out.append(text)
    return out


def _read_labels(value: bytes) -> list[list[bytes]]:
    out, p = [], 0
    while p < len(value):
        count, p = lenenc(value, p)
        labels = []
        for _ in range(count):
            text, p = _lenenc_bytes(value, p)
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
) -> TableMap:
    """A TABLE_MAP event body (``buf[pos:end]``, from the table id) as a TableMap.

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
        unsigned = next(signs, False) if typ in _NUMERIC else False
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
    return TableMap(
        raw.table_id, raw.schema, raw.table, tuple(columns), tuple(opt.primary_key), bool(opt.names)
    )


def _is_character(typ: int, mariadb: bool) -> bool:
    return typ in _CHARACTER or (mariadb and typ == Col.GEOMETRY)


# ----------------------------------------------------------------------------- row decoders
#
# A rows event holds, per row, one image (insert, delete) or two (update): a
# null bitmap over the columns present in the image, then the non-null values.
# compile_rows() generates the source of one function walking all rows of an
# event for one table definition, each column's decoding inlined.


def _new_change_fast(values: dict[str, Any]) -> Change:
    change: Change = Change.__new__(Change)
    object.__setattr__(change, "__dict__", values)
    return change


def _fast_changes_work() -> bool:
    """Whether a Change can be built by filling its __dict__ (about 2.5x faster than
    the frozen dataclass __init__); checked once, so a change to Change falls back."""
    fields = {
        "op": Op.UPDATE,
        "schema": "s",
        "table": "t",
        "columns": ("a",),
        "values": (1,),
        "key_columns": ("a",),
        "key": (0,),
        "ddl": (),
        "table_ddl": None,
        "stat": None,
        "error": "",
        "old_columns": (),
        "old_values": (),
    }
    try:
        fast = _new_change_fast(dict(fields))
    except (AttributeError, TypeError):
        return False
    slow = Change(
        Op.UPDATE, "s", "t", columns=("a",), values=(1,), key_columns=("a",), key=(0,), ddl=()
    )
    return fast == slow and repr(fast) == repr(slow) and vars(fast) == vars(slow)


_FAST_CHANGES = _fast_changes_work()

_BASE_NS: dict[str, Any] = {
    "_U16": _U16,
    "_I16": _I16,
    "_U32": _U32,
    "_I32": _I32,
    "_U64": _U64,
    "_I64": _I64,
    "_F32": _F32,
    "_F64": _F64,
    "_U32BE": _U32BE,
    "_S8": _S8,
    "_YEAR": _YEAR,
    "_date": date,
    "_dt": datetime,
    "_D": Decimal,
    "_CTX": _CTX,
    "_mul": _CTX.multiply,
    "_ts": _timestamp,
    "_time2": _time2,
    "_old_time": _old_time,
    "_old_dt": _old_datetime,
    "_set": _set_text,
    "_unc": uncompress,
    "_uuid": _uuid_text,
    "_bit": _bit_int,
    "_new": Change.__new__,
    "_Change": Change,
    "_setattr": object.__setattr__,
}


class _Gen:
    """Source lines of one generated function and the constants they use."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = dict(_BASE_NS)
        self.lines: list[str] = []

    def const(self, value: Any) -> str:
        name = f"_k{len(self.ns)}"
        self.ns[name] = value
        return name

    def emit(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)


_LEN_EXPR = {
    1: "b[p]",
    2: "(b[p] | b[p + 1] << 8)",
    3: "(b[p] | b[p + 1] << 8 | b[p + 2] << 16)",
    4: "_U32(b, p)[0]",
}
_FRAC_EXPR = {
    0: "",
    1: "b[{o}] * 10000",
    2: "(b[{o}] << 8 | b[{o} + 1]) * 100",
    3: "(b[{o}] << 16 | b[{o} + 1] << 8 | b[{o} + 2])",
}


@dataclass(frozen=True)
class _Code:
    """How to decode (into ``{o}``) and how to skip one non-null value.

    ``size``: bytes of a fixed-size value (None: length-prefixed); ``fmt``: its
    little-endian struct code when it is a plain number (runs of those are
    unpacked with one struct call), ``post`` a conversion of the unpacked ``{x}``.
    """

    decode: tuple[str, ...]
    skip: tuple[str, ...]
    size: int | None = None
    fmt: str = ""
    post: str = "{x}"


def _fixed(size: int, *lines: str) -> _Code:
    """A fixed-size value: ``lines`` compute ``{o}`` reading at ``p``."""
    return _Code((*lines, f"p += {size}"), (f"p += {size}",), size)


def _number(fmt: str, post: str = "{x}") -> _Code:
    """A little-endian number: decoded alone with one struct, or within a run."""
    size = struct.calcsize("<" + fmt)
    unpack = {"b": "_S8[b[p]]", "B": "b[p]"}.get(fmt) or f"{_STRUCTS[fmt]}(b, p)[0]"
    line = "{o} = " + post.replace("{x}", unpack)
    return _Code((line, f"p += {size}"), (f"p += {size}",), size, fmt, post)


_STRUCTS = {"h": "_I16", "H": "_U16", "i": "_I32", "I": "_U32", "q": "_I64", "Q": "_U64"}
_STRUCTS.update({"f": "_F32", "d": "_F64"})


def _variable(lenbytes: int, convert: str) -> _Code:
    """A length-prefixed value; ``convert`` turns ``{raw}`` (a bytes slice) into the value."""
    raw = f"b[p + {lenbytes}:q]"
    decode = (
        f"q = p + {lenbytes} + {_LEN_EXPR[lenbytes]}",
        "{o} = " + convert.replace("{raw}", raw),
        "p = q",
    )
    return _Code(decode, (f"p += {lenbytes} + {_LEN_EXPR[lenbytes]}",))


def _int_code(col: ColumnInfo) -> _Code:
    unsigned = col.unsigned
    if col.type == Col.INT24:
        sign = "False" if unsigned else "True"
        return _fixed(3, f"{{o}} = int.from_bytes(b[p:p + 3], 'little', signed={sign})")
    fmt = {Col.TINY: "b", Col.SHORT: "h", Col.LONG: "i", Col.LONGLONG: "q"}[col.type]
    if not unsigned:
        return _number(fmt)
    # BIGINT UNSIGNED is DECIMAL(20,0) in the canonical types
    return _number(fmt.upper(), "_D({x})" if col.type == Col.LONGLONG else "{x}")


def _decimal_code(col: ColumnInfo, gen: _Gen) -> _Code:
    """DECIMAL(p,s): groups of 9 digits in 4 big-endian bytes (partial groups in
    fewer), sign in the top bit, negative values stored inverted."""
    precision, scale = col.meta >> 8, col.meta & 0xFF
    int_full, int_part = divmod(precision - scale, 9)
    frac_full, frac_part = divmod(scale, 9)
    frac_bytes = 4 * frac_full + _DIG2BYTES[frac_part]
    size = _DIG2BYTES[int_part] + 4 * int_full + frac_bytes
    if size == 0:
        return _fixed(0, "{o} = _D(0)")
    bits = 8 * size
    whole = _groups("t", 8 * frac_bytes, int_full)
    fraction = _frac_groups("t", frac_bytes, frac_full, frac_part, _DIG2BYTES[frac_part])
    unscaled = f"{whole} * {10**scale} + {fraction}" if scale else whole
    unit = gen.const(Decimal(1).scaleb(-scale))
    make = f"_mul(_D({{u}}), {unit})" if scale else "_D({u})"
    return _fixed(
        size,
        f"t = int.from_bytes(b[p:p + {size}], 'big') ^ {1 << (bits - 1)}",
        f"if t >> {bits - 1}:",
        f"    t ^= {(1 << bits) - 1}",
        "    {o} = " + make.replace("{u}", f"-({unscaled})"),
        "else:",
        "    {o} = " + make.replace("{u}", unscaled),
    )


def _groups(var: str, shift: int, full: int) -> str:
    """The integer part: a leading partial group then ``full`` 9-digit groups."""
    expr = f"({var} >> {shift + 32 * full})"
    for k in range(full - 1, -1, -1):
        expr = f"({expr} * 1000000000 + ({var} >> {shift + 32 * k} & 0xFFFFFFFF))"
    return expr


def _frac_groups(var: str, frac_bytes: int, full: int, part: int, part_bytes: int) -> str:
    """The fraction: ``full`` 9-digit groups then a trailing partial group."""
    if frac_bytes == 0:
        return "0"
    terms = []
    for k in range(full):
        shift = 8 * frac_bytes - 32 * (k + 1)
        terms.append((f"({var} >> {shift} & 0xFFFFFFFF)", 9))
    if part:
        terms.append((f"({var} & {(1 << 8 * part_bytes) - 1})", part))
    expr, _ = terms[0]
    for term, digits in terms[1:]:
        expr = f"({expr} * {10**digits} + {term})"
    return expr


def _frac(fsp: int, offset: str) -> tuple[int, str]:
    """(bytes, microseconds expression) of a fractional-seconds part at ``offset``."""
    nbytes = (fsp + 1) // 2
    return nbytes, _FRAC_EXPR[nbytes].replace("{o}", offset)


def _datetime2_code(col: ColumnInfo) -> _Code:
    """DATETIME2: 5 big-endian bytes (sign, year*13+month, day, hour, minute, second)."""
    nbytes, micros = _frac(col.meta, "p + 5")
    extra = f", {micros}" if nbytes else ""
    return _fixed(
        5 + nbytes,
        "t = int.from_bytes(b[p:p + 5], 'big') - 0x8000000000",
        "ym = t >> 22",
        f"{{o}} = _dt(ym // 13, ym % 13, t >> 17 & 31, t >> 12 & 31, t >> 6 & 63, t & 63{extra})",
    )


def _timestamp2_code(col: ColumnInfo) -> _Code:
    nbytes, micros = _frac(col.meta, "p + 4")
    return _fixed(4 + nbytes, f"{{o}} = _ts(_U32BE(b, p)[0], {micros or 0})")


def _date_code(col: ColumnInfo) -> _Code:
    return _fixed(
        3,
        "t = b[p] | b[p + 1] << 8 | b[p + 2] << 16",
        "{o} = _date(t >> 9, t >> 5 & 15, t & 31)",
    )


def _time2_code(col: ColumnInfo) -> _Code:
    return _fixed(3 + (col.meta + 1) // 2, f"{{o}} = _time2(b, p, {col.meta})")


def _bit_code(col: ColumnInfo) -> _Code:
    bits, whole = col.meta >> 8, col.meta & 0xFF
    size = whole + (1 if bits else 0)
    value = f"int.from_bytes(b[p:p + {size}], 'big')"
    if whole * 8 + bits == 1:
        return _fixed(size, f"{{o}} = {value} != 0")
    return _fixed(size, f"{{o}} = _bit({value})")


def _enum_code(col: ColumnInfo, gen: _Gen) -> _Code:
    labels = gen.const(("", *col.labels))  # index 0: the empty "error" value
    if col.meta == 1:
        return _fixed(1, f"{{o}} = {labels}[b[p]]")
    return _fixed(2, f"{{o}} = {labels}[_U16(b, p)[0]]")


def _set_code(col: ColumnInfo, gen: _Gen) -> _Code:
    labels = gen.const(col.labels)
    size = col.meta
    return _fixed(size, f"{{o}} = _set({labels}, int.from_bytes(b[p:p + {size}], 'little'))")


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


def _string_code(col: ColumnInfo) -> _Code:
    if col.type in (Col.VARCHAR, Col.VAR_STRING, Col.VARCHAR_COMPRESSED):
        lenbytes = 1 if col.meta < 256 else 2
        return _variable(lenbytes, _text_convert(col, col.type == Col.VARCHAR_COMPRESSED))
    if col.type == Col.STRING:
        return _variable(1 if col.length < 256 else 2, _text_convert(col))
    if col.type == Col.JSON:
        return _variable(col.meta, "_json({raw})")
    if col.type == Col.GEOMETRY:
        return _variable(col.meta, "{raw}")
    return _variable(col.meta, _text_convert(col, col.type == Col.BLOB_COMPRESSED))


def column_code(col: ColumnInfo, gen: _Gen) -> _Code:
    """The decode/skip source of one column's non-null value."""
    typ = col.type
    simple = _SIMPLE_CODE.get(typ)
    if simple is not None:
        return simple(col)
    if typ == Col.NEWDECIMAL:
        return _decimal_code(col, gen)
    if typ == Col.ENUM:
        return _enum_code(col, gen)
    if typ == Col.SET:
        return _set_code(col, gen)
    if typ in _VARIABLE_TYPES:
        return _string_code(col)
    raise ValueError(f"column {col.name}: binlog column type {typ} is not supported")


_VARIABLE_TYPES = _BLOBS | {
    Col.VARCHAR,
    Col.VAR_STRING,
    Col.VARCHAR_COMPRESSED,
    Col.STRING,
    Col.JSON,
    Col.GEOMETRY,
}
_SIMPLE_CODE: dict[int, Callable[[ColumnInfo], _Code]] = {
    Col.TINY: _int_code,
    Col.SHORT: _int_code,
    Col.INT24: _int_code,
    Col.LONG: _int_code,
    Col.LONGLONG: _int_code,
    Col.FLOAT: lambda c: _number("f"),
    Col.DOUBLE: lambda c: _number("d"),
    Col.YEAR: lambda c: _number("B", "_YEAR[{x}]"),
    Col.NULL: lambda c: _fixed(0, "{o} = None"),
    Col.DATE: _date_code,
    Col.NEWDATE: _date_code,
    Col.DATETIME2: _datetime2_code,
    Col.TIMESTAMP2: _timestamp2_code,
    Col.TIME2: _time2_code,
    Col.TIMESTAMP: lambda c: _fixed(4, "{o} = _ts(_U32(b, p)[0], 0)"),
    Col.DATETIME: lambda c: _fixed(8, "{o} = _old_dt(_U64(b, p)[0])"),
    Col.TIME: lambda c: _fixed(
        3, "{o} = _old_time(int.from_bytes(b[p:p + 3], 'little', signed=True))"
    ),
    Col.BIT: _bit_code,
}


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _image(
    gen: _Gen, cols: tuple[ColumnInfo, ...], present: list[int], wanted: dict[int, str], indent: int
) -> None:
    """Source for one row image: the null bitmap, then each present column decoded
    into ``wanted[i]`` or skipped. Rows without NULLs take a branch without null
    tests, where runs of fixed-size columns are one struct call (or one skip)."""
    nbytes = (len(present) + 7) // 8
    if nbytes == 1:
        gen.emit(indent, "nb = b[p]", "p += 1")
    elif nbytes:
        gen.emit(indent, f"nb = int.from_bytes(b[p:p + {nbytes}], 'little')", f"p += {nbytes}")
    codes = [(bit, i, cols[i], column_code(cols[i], gen)) for bit, i in enumerate(present)]
    nullable = sum(1 << bit for bit, _i, col, _c in codes if col.nullable)
    if not nullable:
        _without_nulls(gen, codes, wanted, indent)
        return
    gen.emit(indent, f"if nb & {nullable}:")
    _with_nulls(gen, codes, wanted, indent + 1)
    gen.emit(indent, "else:")
    _without_nulls(gen, codes, wanted, indent + 1)


_Coded = tuple[int, int, ColumnInfo, _Code]


def _with_nulls(gen: _Gen, codes: list[_Coded], wanted: dict[int, str], indent: int) -> None:
    for bit, i, col, code in codes:
        out = wanted.get(i)
        if out is None:
            if col.nullable:
                gen.emit(indent, f"if not nb & {1 << bit}:")
                gen.emit(indent + 1, *code.skip)
            else:
                gen.emit(indent, *code.skip)
            continue
        lines = [line.replace("{o}", out) for line in code.decode]
        if col.nullable:
            gen.emit(indent, f"if nb & {1 << bit}:", f"    {out} = None", "else:")
            gen.emit(indent + 1, *lines)
        else:
            gen.emit(indent, *lines)


def _without_nulls(gen: _Gen, codes: list[_Coded], wanted: dict[int, str], indent: int) -> None:
    run: list[tuple[int, _Code]] = []
    for _bit, i, _col, code in codes:
        out = wanted.get(i)
        if code.size is not None and (out is None or code.fmt):
            run.append((i, code))
            continue
        _run(gen, run, wanted, indent)
        run = []
        if out is None:
            gen.emit(indent, *code.skip)
        else:
            gen.emit(indent, *(line.replace("{o}", out) for line in code.decode))
    _run(gen, run, wanted, indent)


def _run(gen: _Gen, run: list[tuple[int, _Code]], wanted: dict[int, str], indent: int) -> None:
    """Consecutive fixed-size columns: skipped at once, or unpacked by one struct."""
    size = sum(code.size or 0 for _i, code in run)
    outs = [(wanted[i], code) for i, code in run if i in wanted]
    if len(outs) == 1 and len(run) == 1:
        gen.emit(indent, *(line.replace("{o}", outs[0][0]) for line in run[0][1].decode))
        return
    if outs:
        fmt = "".join(code.fmt if i in wanted else f"{code.size}x" for i, code in run)
        unpack = gen.const(struct.Struct("<" + fmt).unpack_from)
        gen.emit(indent, f"{', '.join(o for o, _c in outs)}, = {unpack}(b, p)")
        for out, code in outs:
            if code.post != "{x}":
                gen.emit(indent, f"{out} = " + code.post.replace("{x}", out))
    if size:
        gen.emit(indent, f"p += {size}")


ROWS_WRITE, ROWS_UPDATE, ROWS_DELETE = 1, 2, 3
_OPS = {ROWS_WRITE: Op.INSERT, ROWS_UPDATE: Op.UPDATE, ROWS_DELETE: Op.DELETE}


def _key_columns(tm: TableMap, present: list[int]) -> list[int]:
    """Primary-key columns identifying the old row (all present columns without a PK)."""
    if tm.primary_key and all(i in present for i in tm.primary_key):
        return list(tm.primary_key)
    return present


def compile_rows(tm: TableMap, kind: int, before: int, after: int) -> RowsFn:
    """Generate the walker of all rows of one rows event (see module docstring).

    ``before`` / ``after`` are the bitmaps of columns present in the images (a
    write has only ``after``, a delete only ``before``). With ``tm.old_rows`` every
    column of the before image is decoded, and the change carries them as its old row.
    """
    gen = _Gen()
    cols = tm.columns
    gen.emit(0, "def rows(b, p, end, out):", "    append = out.append", "    while p < end:")
    key_cols: list[int] = []
    old_cols: list[int] = []
    if kind in (ROWS_UPDATE, ROWS_DELETE):
        present = _bits(before)
        key_cols = _key_columns(tm, present)
        old_cols = present if tm.old_rows and present != key_cols else []
        _image(gen, cols, present, {i: f"k{i}" for i in key_cols + old_cols}, 2)
    value_cols: list[int] = []
    if kind in (ROWS_WRITE, ROWS_UPDATE):
        value_cols = _bits(after)
        _image(gen, cols, value_cols, {i: f"v{i}" for i in value_cols}, 2)
    fields = {
        "op": gen.const(_OPS[kind]),
        "schema": gen.const(tm.schema),
        "table": gen.const(tm.table),
        "columns": gen.const(tuple(cols[i].name for i in value_cols)),
        "values": _tuple_expr(f"v{i}" for i in value_cols),
        "key_columns": gen.const(tuple(cols[i].name for i in key_cols)),
        "key": _tuple_expr(f"k{i}" for i in key_cols),
        "ddl": "()",
        "table_ddl": "None",
        "stat": "None",
        "error": "''",
        "old_columns": gen.const(tuple(cols[i].name for i in old_cols)),
        "old_values": _tuple_expr(f"k{i}" for i in old_cols),
    }
    gen.emit(2, *_change_lines(fields), "append(c)")
    gen.emit(1, "return p")
    fn: RowsFn = _build(gen, "rows", tm)
    return fn


def _tuple_expr(names: Iterable[str]) -> str:
    items = list(names)
    return f"({', '.join(items)},)" if items else "()"


def _change_lines(fields: dict[str, str]) -> list[str]:
    if _FAST_CHANGES:
        body = ", ".join(f"{k!r}: {v}" for k, v in fields.items())
        return ["c = _new(_Change)", f"_setattr(c, '__dict__', {{{body}}})"]
    args = ", ".join(f"{k}={v}" for k, v in fields.items())
    return [f"c = _Change({args})"]


def _build(gen: _Gen, name: str, tm: TableMap) -> Any:
    source = "\n".join(gen.lines)
    code = compile(source, f"<binlog rows {tm.qualified}>", "exec")
    exec(code, gen.ns)  # our own generated source: no user text inside
    return gen.ns[name]


def compile_column(col: ColumnInfo) -> Callable[[bytes, int], tuple[Any, int]]:
    """One column's decoder ``(buf, pos) -> (value, next pos)``: the slow path that
    finds which value of a failing row is bad."""
    gen = _Gen()
    code = column_code(col, gen)
    gen.emit(0, "def value(b, p):")
    gen.emit(1, *(line.replace("{o}", "v") for line in code.decode), "return v, p")
    return _build(gen, "value", TableMap(0, "", col.name, ()))  # type: ignore[no-any-return]


def compile_skip(col: ColumnInfo) -> Callable[[bytes, int], int]:
    """One column's skipper ``(buf, pos) -> next pos`` (its value is not decoded, so
    its character set does not matter); ValueError for a type the decoder lacks."""
    gen = _Gen()
    code = column_code(replace(col, charset="binary", ctype=None), gen)
    gen.emit(0, "def skip(b, p):")
    gen.emit(1, *code.skip, "return p")
    return _build(gen, "skip", TableMap(0, "", col.name, ()))  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- statements
#
# QUERY events carry transaction control (BEGIN, COMMIT...) and DDL. Only what
# changes a captured table's rows or columns matters: TRUNCATE TABLE and the
# column actions of ALTER TABLE, parsed here by a small tokenizer.


@dataclass(frozen=True)
class Statement:
    """What a QUERY event means to the change stream."""

    kind: str  # begin, commit, rollback, savepoint, xa, truncate, alter, other
    schema: str = ""
    table: str = ""
    ddl: tuple[ColumnChange, ...] = ()


@dataclass(frozen=True)
class _Tok:
    kind: str  # id (quoted identifier), str, word, punct
    text: str

    @property
    def up(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def ident(self) -> bool:
        return self.kind in ("id", "word")


_TOKEN = re.compile(
    r"""(?P<skip>\s+|--[ \t][^\n]*|--$|\#[^\n]*|/\*M?!\d*|\*/|/\*.*?\*/)
      | (?P<id>`(?:[^`]|``)*`)
      | (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
      | (?P<word>[A-Za-z0-9_$\u0080-\uffff]+)
      | (?P<punct>.)""",
    re.S | re.X | re.M,
)
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.S)


def tokenize(sql: str) -> list[_Tok]:
    """SQL tokens without comments (executable /*!...*/ comments keep their content)."""
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup or "punct"
        if kind == "skip":
            continue
        text = m.group()
        if kind == "id":
            text = text[1:-1].replace("``", "`")
        elif kind == "str":
            text = _unquote(text)
        out.append(_Tok(kind, text))
    return out


_HEAD = re.compile(r"\s*(?:(?:/\*(?!M?!).*?\*/|/\*M?!\d*)\s*)*([A-Za-z]+)", re.S)


def classify(sql: str, db: str) -> Statement:
    """The meaning of one QUERY event's statement (``db``: its default database)."""
    m = _HEAD.match(sql)
    first = m.group(1).upper() if m else ""
    if first in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "XA"):
        return Statement(first.lower() if first != "RELEASE" else "savepoint")
    if first == "ROLLBACK":
        return Statement("savepoint" if re.search(r"\bTO\b", sql, re.I) else "rollback")
    if first == "TRUNCATE":
        return _truncate(tokenize(sql), db)
    if first == "ALTER":
        return _alter(tokenize(sql), db)
    return Statement("other")


def _table_name(toks: list[_Tok], i: int, db: str) -> tuple[str, str, int]:
    """``[db.]name`` at ``toks[i]``: (schema, table, index after it)."""
    if i + 2 < len(toks) and toks[i + 1].text == "." and toks[i + 1].kind == "punct":
        return toks[i].text, toks[i + 2].text, i + 3
    return db, toks[i].text if i < len(toks) else "", i + 1


def _truncate(toks: list[_Tok], db: str) -> Statement:
    i = 2 if len(toks) > 1 and toks[1].up == "TABLE" else 1
    if i >= len(toks) or not toks[i].ident:
        return Statement("other")
    schema, table, _ = _table_name(toks, i, db)
    return Statement("truncate", schema, table)


def _alter(toks: list[_Tok], db: str) -> Statement:
    i = 1
    while i < len(toks) and toks[i].up in ("ONLINE", "OFFLINE", "IGNORE"):
        i += 1
    if i >= len(toks) or toks[i].up != "TABLE":
        return Statement("other")
    i += 1
    if i + 1 < len(toks) and toks[i].up == "IF" and toks[i + 1].up == "EXISTS":
        i += 2
    schema, table, i = _table_name(toks, i, db)
    if i < len(toks) and toks[i].up == "WAIT":
        i += 2
    elif i < len(toks) and toks[i].up == "NOWAIT":
        i += 1
    changes: list[ColumnChange] = []
    for action in _split(toks[i:]):
        changes += _action(action)
    return Statement("alter", schema, table, tuple(changes))


def _split(toks: list[_Tok]) -> list[list[_Tok]]:
    """Split on commas outside parentheses."""
    parts: list[list[_Tok]] = [[]]
    depth = 0
    for tok in toks:
        if tok.kind == "punct" and tok.text in "()":
            depth += 1 if tok.text == "(" else -1
        if depth == 0 and tok.kind == "punct" and tok.text == ",":
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


_NOT_COLUMN = {
    "INDEX",
    "KEY",
    "CONSTRAINT",
    "PRIMARY",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "FOREIGN",
    "CHECK",
    "PERIOD",
    "SYSTEM",
    "PARTITION",
    "VECTOR",
    "DEFAULT",
}


def _after_column_word(toks: list[_Tok], i: int, *extra: str) -> int | None:
    """Index of the column name after ADD/DROP/MODIFY/CHANGE (None: not a column)."""
    if i < len(toks) and toks[i].up == "COLUMN":
        i += 1
    elif i < len(toks) and toks[i].kind == "word" and toks[i].up in _NOT_COLUMN:
        return None
    for word in extra:
        if i < len(toks) and toks[i].up == word:
            i += 1
    return i if i < len(toks) else None


def _action(toks: list[_Tok]) -> list[ColumnChange]:
    verb = toks[0].up
    if verb == "ADD":
        return _add(toks)
    if verb == "DROP":
        i = _after_column_word(toks, 1, "IF", "EXISTS")
        return [] if i is None else [ColumnChange("drop", toks[i].text)]
    if verb == "MODIFY":
        i = _after_column_word(toks, 1, "IF", "EXISTS")
        if i is None:
            return []
        ctype, nullable = column_type(toks[i + 1 :])
        return [ColumnChange("alter_type", toks[i].text, ctype, nullable=nullable)]
    if verb == "CHANGE":
        return _change(toks)
    if verb == "RENAME" and len(toks) >= 5 and toks[1].up == "COLUMN" and toks[3].up == "TO":
        return [ColumnChange("rename", toks[2].text, new_name=toks[4].text)]
    return []


def _add(toks: list[_Tok]) -> list[ColumnChange]:
    i = _after_column_word(toks, 1, "IF", "NOT", "EXISTS")
    if i is None:
        return []
    if toks[i].kind == "punct" and toks[i].text == "(":
        inner = toks[i + 1 : len(toks) - 1 if toks[-1].text == ")" else len(toks)]
        return [_added(part) for part in _split(inner)]
    return [_added(toks[i:])]


def _added(toks: list[_Tok]) -> ColumnChange:
    ctype, nullable = column_type(toks[1:])
    return ColumnChange("add", toks[0].text, ctype, nullable=nullable)


def _change(toks: list[_Tok]) -> list[ColumnChange]:
    i = _after_column_word(toks, 1, "IF", "EXISTS")
    if i is None or i + 1 >= len(toks):
        return []
    old, new = toks[i].text, toks[i + 1].text
    ctype, nullable = column_type(toks[i + 2 :])
    out = [ColumnChange("rename", old, new_name=new)] if old != new else []
    return [*out, ColumnChange("alter_type", new, ctype, nullable=nullable)]


_TWO_WORD_TYPES = {
    ("DOUBLE", "PRECISION"): "double",
    ("CHARACTER", "VARYING"): "varchar",
    ("CHAR", "VARYING"): "varchar",
    ("NATIONAL", "CHAR"): "char",
    ("NATIONAL", "CHARACTER"): "char",
    ("NATIONAL", "VARCHAR"): "varchar",
    ("NCHAR", "VARCHAR"): "varchar",
    ("LONG", "VARCHAR"): "mediumtext",
    ("LONG", "VARBINARY"): "mediumblob",
}
_TYPE_ALIASES = {
    "integer": "int",
    "int4": "int",
    "int1": "tinyint",
    "int2": "smallint",
    "int3": "mediumint",
    "middleint": "mediumint",
    "int8": "bigint",
    "dec": "decimal",
    "numeric": "decimal",
    "fixed": "decimal",
    "number": "decimal",
    "real": "double",
    "float8": "double",
    "float4": "float",
    "character": "char",
    "nchar": "char",
    "nvarchar": "varchar",
    "varchar2": "varchar",
    "bool": "tinyint",
    "boolean": "tinyint",
    "long": "mediumtext",
    "clob": "longtext",
    "serial": "bigint",
}
_BINARY_OF = {
    "char": "binary",
    "varchar": "varbinary",
    "tinytext": "tinyblob",
    "text": "blob",
    "mediumtext": "mediumblob",
    "longtext": "longblob",
}


def column_type(toks: list[_Tok]) -> tuple[ColumnType, bool]:
    """(canonical type, nullable) of a column definition's tokens (type first),
    through the same mapping as the catalog (types.from_mysql)."""
    if not toks:
        raise ValueError("a column definition without a type")
    name, i = toks[0].text.lower(), 1
    if i < len(toks) and (toks[0].up, toks[1].up) in _TWO_WORD_TYPES:
        name, i = _TWO_WORD_TYPES[(toks[0].up, toks[1].up)], 2
    serial = name == "serial"
    name = _TYPE_ALIASES.get(name, name)
    args: list[str] = []
    if i < len(toks) and toks[i].text == "(" and toks[i].kind == "punct":
        close = next(j for j in range(i, len(toks)) if toks[j].text == ")")
        args = [t.text for t in toks[i + 1 : close] if t.text != "," or t.kind != "punct"]
        i = close + 1
    unsigned, binary = serial, False
    words = [t.up for t in toks[i:]]
    unsigned = unsigned or "UNSIGNED" in words or "ZEROFILL" in words
    for j, word in enumerate(words[:-1]):
        if word in ("SET", "CHARSET") and words[j + 1] == "BINARY":
            binary = True
    name = _BINARY_OF.get(name, name) if binary else name
    if name == "float" and len(args) == 1 and args[0].isdigit() and int(args[0]) > 24:
        name, args = "double", []  # FLOAT(p) with p > 24 is a DOUBLE
    return _canonical(name, args, unsigned), _nullable(toks[i:]) and not serial


def _canonical(name: str, args: list[str], unsigned: bool) -> ColumnType:
    numbers = [int(a) for a in args if a.isdigit()]
    first = numbers[0] if numbers else None
    length = precision = scale = None
    if name in ("enum", "set"):
        full = name + "(" + ",".join("'" + a.replace("'", "''") + "'" for a in args) + ")"
    else:
        full = name + (f"({','.join(args)})" if args else "")
    if unsigned:
        full += " unsigned"
    if name in ("char", "binary"):
        length = first or 1
    elif name in ("varchar", "varbinary"):
        length = first
    elif name == "decimal":
        precision, scale = first or 10, numbers[1] if len(numbers) > 1 else 0
    elif name == "bit":
        precision = first or 1
    elif name in ("datetime", "timestamp", "time"):
        scale = first or 0
    return from_mysql(name, full, length, precision, scale, is_json=name == "json")


def _nullable(toks: list[_Tok]) -> bool:
    depth, prev = 0, ""
    for tok in toks:
        if tok.kind == "punct" and tok.text in "()":
            depth += 1 if tok.text == "(" else -1
            continue
        if depth == 0 and tok.kind == "word":
            if (prev, tok.up) in (("NOT", "NULL"), ("PRIMARY", "KEY")):
                return False
            prev = tok.up
    return True


# ----------------------------------------------------------------------------- MySQL JSON
#
# MySQL stores JSON columns in a binary format (MariaDB stores them as text).


class _Raw(str):
    """Text already in JSON form (a quoted date, a decimal)."""


def mysql_json_text(data: bytes) -> str:
    """MySQL binary JSON -> JSON text in MySQL's own layout (``{"a": 1, "b": [2]}``)."""
    if not data:
        return "null"
    return _json_dump(_json_value(data[0], data, 1))


def _json_value(kind: int, buf: bytes, pos: int) -> Any:
    if kind <= 3:
        return _json_container(buf, pos, large=kind in (1, 3), is_object=kind <= 1)
    if kind == 4:
        return {0: None, 1: True, 2: False}[buf[pos]]
    scalar = _JSON_SCALARS.get(kind)
    if scalar is not None:
        return scalar.unpack_from(buf, pos)[0]
    if kind == 12:
        size, pos = _json_varlen(buf, pos)
        return buf[pos : pos + size].decode("utf-8", "replace")
    if kind == 15:
        size, start = _json_varlen(buf, pos + 1)
        return _json_opaque(buf[pos], buf[start : start + size])
    raise BadValueError(f"unknown MySQL JSON value type {kind}")


_JSON_SCALARS = {
    5: struct.Struct("<h"),
    6: struct.Struct("<H"),
    7: struct.Struct("<i"),
    8: struct.Struct("<I"),
    9: struct.Struct("<q"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<d"),
}


def _json_varlen(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _json_container(buf: bytes, pos: int, large: bool, is_object: bool) -> Any:
    word = struct.Struct("<I" if large else "<H")
    size = word.size
    count = word.unpack_from(buf, pos)[0]
    key_entry, value_entry = size + 2, 1 + size
    values_at = pos + 2 * size + (count * key_entry if is_object else 0)
    values = []
    for i in range(count):
        entry = values_at + i * value_entry
        kind = buf[entry]
        if kind in (4, 5, 6) or (large and kind in (7, 8)):
            values.append(_json_value(kind, buf, entry + 1))
        else:
            values.append(_json_value(kind, buf, pos + word.unpack_from(buf, entry + 1)[0]))
    if not is_object:
        return values
    keys = []
    for i in range(count):
        entry = pos + 2 * size + i * key_entry
        offset, length = word.unpack_from(buf, entry)[0], _U16(buf, entry + size)[0]
        keys.append(buf[pos + offset : pos + offset + length].decode("utf-8", "replace"))
    return dict(zip(keys, values, strict=True))


def _json_opaque(field_type: int, data: bytes) -> Any:
    if field_type == Col.NEWDECIMAL:
        col = ColumnInfo("", Col.NEWDECIMAL, meta=data[0] << 8 | data[1])
        return _Raw(str(compile_column(col)(data, 2)[0]))
    if field_type in (Col.DATE, Col.DATETIME, Col.TIMESTAMP, Col.TIME):
        packed = _I64(data, 0)[0]
        return _Raw(json.dumps(_packed_temporal(field_type, packed)))
    import base64

    return _Raw(json.dumps(f"base64:type{field_type}:{base64.b64encode(data).decode()}"))


def _packed_temporal(field_type: int, packed: int) -> str:
    sign = "-" if packed < 0 else ""
    packed = abs(packed)
    whole, micros = packed >> 24, packed & 0xFFFFFF
    hms = whole & 0x1FFFF
    clock = f"{hms >> 12:02d}:{hms >> 6 & 63:02d}:{hms & 63:02d}.{micros:06d}"
    if field_type == Col.TIME:  # the hour has 10 bits: up to 838
        return sign + f"{whole >> 12 & 0x3FF:02d}" + clock[2:]
    ymd = whole >> 17
    day = f"{(ymd >> 5) // 13:04d}-{(ymd >> 5) % 13:02d}-{ymd & 31:02d}"
    return day if field_type == Col.DATE else f"{day} {clock}"


def _json_dump(value: Any) -> str:
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}: {_json_dump(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


_BASE_NS["_json"] = mysql_json_text


# ----------------------------------------------------------------------------- GTID state


class GtidState:
    """The GTID position after the last commit.

    MariaDB: the last ``domain-server-seq`` per domain (``0-1-42,1-2-7``); MySQL:
    the executed set per source uuid (``uuid:1-42:50``). ``known`` is False when
    the stream started without a state (then no GTID is reported, so a partial
    state is never used to resume).
    """

    def __init__(self, text: str | None) -> None:
        self.known = text is not None
        self.domains: dict[int, tuple[int, int]] = {}
        self.sets: dict[str, list[list[int]]] = {}
        for item in (text or "").replace("\n", "").split(","):
            if item.strip():
                self._parse(item.strip())
        self._text: str | None = None

    def _parse(self, item: str) -> None:
        if ":" in item:
            uuid, *ranges = item.split(":")
            spans = [[int(a), int(b or a)] for a, _, b in (r.partition("-") for r in ranges)]
            self.sets[uuid.lower()] = spans
            return
        domain, server, seq = (int(x) for x in item.split("-"))
        self.domains[domain] = (server, seq)

    def add_mariadb(self, domain: int, server: int, seq: int) -> None:
        self.domains[domain] = (server, seq)
        self._text = None

    def add_mysql(self, uuid: str, gno: int) -> None:
        spans = self.sets.setdefault(uuid, [])
        if spans and spans[-1][1] + 1 == gno:
            spans[-1][1] = gno
        elif not any(a <= gno <= b for a, b in spans):
            spans.append([gno, gno])
            spans.sort()
        self._text = None

    def merge_list(self, gtids: list[tuple[int, int, int]]) -> None:
        """A GTID_LIST event: the full state at the start of a binlog file."""
        for domain, server, seq in gtids:
            if domain not in self.domains:
                self.domains[domain] = (server, seq)
        self.known = True
        self._text = None

    def __str__(self) -> str:
        if not self.known:
            return ""
        if self._text is None:
            parts = [f"{d}-{s}-{n}" for d, (s, n) in sorted(self.domains.items())]
            for uuid, spans in sorted(self.sets.items()):
                ranges = ":".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
                parts.append(f"{uuid}:{ranges}")
            self._text = ",".join(parts)
        return self._text


# ----------------------------------------------------------------------------- decoder

_FILE_NUMBER = re.compile(r"(\d+)$")
_DECODE_ERRORS = (
    ValueError,
    IndexError,
    KeyError,
    struct.error,
    zlib.error,
    OverflowError,
    RecursionError,  # JSON nested deeper than the interpreter's stack
)
_ROWS_KINDS = {
    Ev.WRITE_V1: (ROWS_WRITE, 1, False),
    Ev.UPDATE_V1: (ROWS_UPDATE, 1, False),
    Ev.DELETE_V1: (ROWS_DELETE, 1, False),
    Ev.WRITE_V2: (ROWS_WRITE, 2, False),
    Ev.UPDATE_V2: (ROWS_UPDATE, 2, False),
    Ev.DELETE_V2: (ROWS_DELETE, 2, False),
    Ev.WRITE_COMPRESSED_V1: (ROWS_WRITE, 1, True),
    Ev.UPDATE_COMPRESSED_V1: (ROWS_UPDATE, 1, True),
    Ev.DELETE_COMPRESSED_V1: (ROWS_DELETE, 1, True),
}


def file_number(name: str) -> int:
    m = _FILE_NUMBER.search(name)
    return int(m.group(1)) if m else 0


class BinlogDecoder:
    """Stateful decoder: events in, committed transactions out.

    ``captured``: the (schema, table) pairs whose changes are emitted (None: all);
    other tables' row events are skipped without decoding, but their transactions
    still come out (with no changes) so the position moves on. ``gtid``: the GTID
    state at the start position (None: unknown). ``charsets``: collation id ->
    character set name (the server's table); ``ctypes``: canonical column types
    by (schema, table) from the catalog. ``fold_case``: lower_case_table_names.
    ``old_rows``: the tables whose updates and deletes carry the whole before image
    (decoding it costs time; the lake and source filters need it).
    """

    def __init__(
        self,
        *,
        file: str = "",
        offset: int = 4,
        gtid: str | None = None,
        checksum: bool = True,
        captured: set[tuple[str, str]] | None = None,
        charsets: dict[int, str] | None = None,
        ctypes: dict[tuple[str, str], dict[str, ColumnType]] | None = None,
        fold_case: bool = False,
        mariadb: bool = True,
        old_rows: set[tuple[str, str]] | None = None,
    ) -> None:
        self.file, self.file_number, self.offset = file, file_number(file), offset
        self.gtid = GtidState(gtid)
        self.crc = 4 if checksum else 0
        self.fold_case = fold_case
        self.old_rows = {self._key(s, t) for s, t in old_rows or ()}
        self.captured = None if captured is None else {self._key(s, t) for s, t in captured}
        self.charsets = charsets
        self.ctypes = {self._key(*k): dict(v) for k, v in (ctypes or {}).items()}
        self.mariadb = mariadb
        self.maps: dict[int, TableMap | None] = {}
        self._compiled: dict[bytes, TableMap] = {}
        self.changes: list[Change] = []
        self.in_txn = self.standalone = self.xa = False
        self.pending: tuple[Any, ...] | None = None
        self.heartbeat: BinlogPosition | None = None
        self.event_pos = 0  # log_pos of the event being decoded (for error messages)

    def _key(self, schema: str, table: str) -> tuple[str, str]:
        return (schema.lower(), table.lower()) if self.fold_case else (schema, table)

    def wanted(self, schema: str, table: str) -> bool:
        return self.captured is None or self._key(schema, table) in self.captured

    @property
    def position(self) -> BinlogPosition:
        """Where the stream is: just after the last event decoded."""
        return BinlogPosition(self.file_number, self.offset, self.file, str(self.gtid))

    def feed(self, event: bytes) -> Transaction | None:
        """Decode one event; returns the transaction its commit completes."""
        try:
            return self._feed(event)
        except _DECODE_ERRORS as exc:
            kind = event[4] if len(event) > 4 else -1
            raise DecodeError(
                f"binlog {self.file}:{self.event_pos}: malformed event of type {kind} "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def _feed(self, event: bytes) -> Transaction | None:
        stamp, kind, server, _size, log_pos, flags = HEADER.unpack_from(event)
        self.event_pos = log_pos
        if log_pos and not flags & ARTIFICIAL and kind not in _NO_POSITION:
            self.offset = log_pos
        elif kind == Ev.FORMAT_DESCRIPTION and log_pos > self.offset:
            self.offset = log_pos  # a new file's start (one re-sent on connect is older)
        rows = _ROWS_KINDS.get(kind)
        if rows is not None:
            self._rows(event, *rows)
            return None
        handler = _HANDLERS.get(kind)
        return None if handler is None else handler(self, event, stamp, server, log_pos)

    # -- file and format

    def _rotate(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        self.file = ev[HEADER_LEN + 8 : len(ev) - self.crc].decode("utf-8", "replace")
        self.file_number = file_number(self.file)
        self.offset = _U64(ev, HEADER_LEN)[0]
        self.maps.clear()
        return None

    def _format(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        version = ev[HEADER_LEN + 2 : HEADER_LEN + 52].split(b"\0", 1)[0].decode("ascii", "replace")
        self.mariadb = "mariadb" in version.lower()
        alg = ev[len(ev) - 5] if len(ev) >= HEADER_LEN + 57 else 255
        if alg in (0, 1):
            self.crc = 4 * alg
        self.maps.clear()
        return None

    def _heartbeat(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        name = ev[HEADER_LEN : len(ev) - self.crc].decode("utf-8", "replace")
        self.heartbeat = BinlogPosition(file_number(name), log_pos, name)
        return None

    # -- transactions

    def _gtid(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        seq, domain = _U64(ev, HEADER_LEN)[0], _U32(ev, HEADER_LEN + 8)[0]
        flags = ev[HEADER_LEN + 12]
        self.pending = (domain, server, seq)
        self.changes = []
        self.in_txn, self.standalone, self.xa = True, bool(flags & 1), bool(flags & 64)
        return None

    def _gtid_list(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        count = _U32(ev, HEADER_LEN)[0] & 0x0FFFFFFF
        items = []
        for i in range(count):
            at = HEADER_LEN + 4 + 16 * i
            items.append((_U32(ev, at)[0], _U32(ev, at + 4)[0], _U64(ev, at + 8)[0]))
        self.gtid.merge_list(items)
        return None

    def _mysql_gtid(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        sid = ev[HEADER_LEN + 1 : HEADER_LEN + 17].hex()
        uuid = f"{sid[:8]}-{sid[8:12]}-{sid[12:16]}-{sid[16:20]}-{sid[20:]}"
        self.pending = ("mysql", uuid, _U64(ev, HEADER_LEN + 17)[0])
        self.changes = []
        return None

    def _anonymous_gtid(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        self.pending = None
        self.changes = []
        return None

    def _xa_prepare(self, ev: bytes, stamp: int, server: int, log_pos: int) -> Transaction | None:
        self.xa = True
        return self._xa(stamp, log_pos)

    def _xid(self, ev: bytes, stamp: int, server: int, log_pos: int) -> Transaction:
        return self._commit(stamp, log_pos, _U64(ev, HEADER_LEN)[0])

    def _commit(self, stamp: int, log_pos: int, xid: int) -> Transaction:
        pending = self.pending
        if pending is not None:
            if pending[0] == "mysql":
                self.gtid.add_mysql(pending[1], pending[2])
            else:
                self.gtid.add_mariadb(*pending)
            xid = xid or int(pending[-1])
        end = BinlogPosition(self.file_number, log_pos, self.file, str(self.gtid))
        txn = Transaction(xid, datetime.fromtimestamp(stamp, UTC), end, self.changes)
        self.changes = []
        self.pending = None
        self.in_txn = self.standalone = self.xa = False
        return txn

    # -- statements

    def _query(self, ev: bytes, stamp: int, server: int, log_pos: int) -> Transaction | None:
        return self._statement(ev, stamp, log_pos, compressed=False)

    def _query_compressed(
        self, ev: bytes, stamp: int, server: int, log_pos: int
    ) -> Transaction | None:
        return self._statement(ev, stamp, log_pos, compressed=True)

    def _statement(
        self, ev: bytes, stamp: int, log_pos: int, compressed: bool
    ) -> Transaction | None:
        p = HEADER_LEN
        db_len, status_len = ev[p + 8], _U16(ev, p + 11)[0]
        p += 13 + status_len
        db = ev[p : p + db_len].decode("utf-8", "surrogateescape")
        raw = ev[p + db_len + 1 : len(ev) - self.crc]
        if compressed:
            raw = uncompress(raw)
        if raw == b"BEGIN":
            self.in_txn = True
            return None
        if raw == b"COMMIT":
            return self._commit(stamp, log_pos, 0)
        return self._other_statement(classify(raw.decode("utf-8", "replace"), db), stamp, log_pos)

    def _other_statement(self, st: Statement, stamp: int, log_pos: int) -> Transaction | None:
        if st.kind == "begin":
            self.in_txn = True
            return None
        if st.kind == "savepoint":
            return None
        if st.kind == "commit":
            return self._commit(stamp, log_pos, 0)
        if st.kind == "rollback":
            self.changes = []
            return self._commit(stamp, log_pos, 0)
        if st.kind == "xa":
            return self._xa(stamp, log_pos)
        self.changes += self._statement_changes(st)
        if self.in_txn and not self.standalone:
            return None
        return self._commit(stamp, log_pos, 0)

    def _xa(self, stamp: int, log_pos: int) -> Transaction | None:
        if not self.xa and not self.changes:
            return None  # XA START / END
        if self.changes:
            raise TaskError(
                f"binlog {self.file}:{log_pos}: an XA transaction changed captured tables; "
                "XA transactions are not supported by opendms's MySQL capture yet"
            )
        return self._commit(stamp, log_pos, 0)

    def _statement_changes(self, st: Statement) -> list[Change]:
        if st.kind not in ("truncate", "alter") or not self.wanted(st.schema, st.table):
            return []
        if st.kind == "truncate":
            return [Change(Op.TRUNCATE, st.schema, st.table)]
        if not st.ddl:
            return []
        self._schema_changed(st)
        return [Change(Op.DDL, st.schema, st.table, ddl=st.ddl)]

    def _schema_changed(self, st: Statement) -> None:
        """Keep the catalog types in step with the DDL; recompile the table's decoders."""
        key = self._key(st.schema, st.table)
        types = self.ctypes.setdefault(key, {})
        for change in st.ddl:
            if change.action == "drop":
                types.pop(change.column, None)
            elif change.action == "rename" and change.new_name is not None:
                moved = types.pop(change.column, None)
                if moved is not None:
                    types[change.new_name] = moved
            elif change.ctype is not None:
                types[change.column] = change.ctype
        self._compiled = {
            k: v for k, v in self._compiled.items() if self._key(v.schema, v.table) != key
        }

    # -- rows

    def _table_map(self, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        table_id = int.from_bytes(ev[HEADER_LEN : HEADER_LEN + 6], "little")
        p = HEADER_LEN + 8
        schema = ev[p + 1 : p + 1 + ev[p]].decode("utf-8", "surrogateescape")
        p += ev[p] + 2
        table = ev[p + 1 : p + 1 + ev[p]].decode("utf-8", "surrogateescape")
        if not self.wanted(schema, table):
            self.maps[table_id] = None
            return None
        end = len(ev) - self.crc
        body = ev[HEADER_LEN + 6 : end]
        tm = self._compiled.get(body)
        if tm is None:
            tm = self._parse_map(ev, end, schema, table, log_pos)
            if len(self._compiled) > 1000:
                self._compiled.clear()
            self._compiled[body] = tm
        self.maps[table_id] = tm
        return None

    def _parse_map(self, ev: bytes, end: int, schema: str, table: str, log_pos: int) -> TableMap:
        ctypes = self.ctypes.get(self._key(schema, table))
        tm = parse_table_map(
            ev, HEADER_LEN, end, mariadb=self.mariadb, charsets=self.charsets, ctypes=ctypes
        )
        if not tm.has_names:
            raise TaskError(
                f"binlog {self.file}:{log_pos}: the table map of {schema}.{table} has no "
                "column names; set binlog_row_metadata=FULL on the source server"
            )
        tm.old_rows = self._key(schema, table) in self.old_rows
        return tm

    def _rows(self, ev: bytes, kind: int, version: int, compressed: bool) -> None:
        tm = self.maps.get(int.from_bytes(ev[HEADER_LEN : HEADER_LEN + 6], "little"))
        if tm is None:
            return
        p = HEADER_LEN + 8
        if version == 2:
            p += _U16(ev, p)[0]
        count, p = lenenc(ev, p)
        if count != len(tm.columns):
            raise TaskError(
                f"binlog {self.file}:{self.event_pos}: a rows event of {tm.qualified} has "
                f"{count} columns, its table map {len(tm.columns)}"
            )
        nbytes = (count + 7) // 8
        first = int.from_bytes(ev[p : p + nbytes], "little")
        p += nbytes
        before, after = (0, first) if kind == ROWS_WRITE else (first, 0)
        if kind == ROWS_UPDATE:
            after = int.from_bytes(ev[p : p + nbytes], "little")
            p += nbytes
        if not (before or kind == ROWS_WRITE) or not (after or kind == ROWS_DELETE):
            raise ValueError(f"a rows event of {tm.qualified} with an image of no columns")
        end = len(ev) - self.crc
        if compressed:
            rows = uncompress(ev[p:end])
            self._decode_rows(tm, kind, before, after, rows, 0, len(rows))
        else:
            self._decode_rows(tm, kind, before, after, ev, p, end)

    def _decode_rows(
        self, tm: TableMap, kind: int, before: int, after: int, buf: bytes, p: int, end: int
    ) -> None:
        """The rows' changes into ``self.changes``: by the compiled walker, or row by row
        when a value cannot be decoded (bad rows become changes with ``error`` set)."""
        mark = len(self.changes)
        try:
            stop = tm.rows_fn(kind, before, after)(buf, p, end, self.changes)
            if stop != end:  # into the checksum, or rows cut short: not this table's rows
                raise ValueError(f"the rows of {tm.qualified} end {stop - end} bytes off")
        except _DECODE_ERRORS:
            from opendms.endpoints.mysql.badrows import decode_rows_slowly

            del self.changes[mark:]
            self.changes += decode_rows_slowly(tm, kind, before, after, buf, p, end)


_NO_POSITION = {Ev.FORMAT_DESCRIPTION, Ev.HEARTBEAT, Ev.HEARTBEAT_V2, Ev.ROTATE}


def _unsupported(what: str, fix: str) -> Callable[[BinlogDecoder, bytes, int, int, int], None]:
    def handler(dec: BinlogDecoder, ev: bytes, stamp: int, server: int, log_pos: int) -> None:
        raise TaskError(f"binlog {dec.file}:{log_pos}: {what} is not supported; {fix}")

    return handler


_HANDLERS: dict[int, Callable[[BinlogDecoder, bytes, int, int, int], Transaction | None]] = {
    Ev.ROTATE: BinlogDecoder._rotate,
    Ev.FORMAT_DESCRIPTION: BinlogDecoder._format,
    Ev.HEARTBEAT: BinlogDecoder._heartbeat,
    Ev.QUERY: BinlogDecoder._query,
    Ev.QUERY_COMPRESSED: BinlogDecoder._query_compressed,
    Ev.XID: BinlogDecoder._xid,
    Ev.TABLE_MAP: BinlogDecoder._table_map,
    Ev.GTID: BinlogDecoder._gtid,
    Ev.GTID_LIST: BinlogDecoder._gtid_list,
    Ev.GTID_LOG: BinlogDecoder._mysql_gtid,
    Ev.ANONYMOUS_GTID: BinlogDecoder._anonymous_gtid,
    Ev.XA_PREPARE: BinlogDecoder._xa_prepare,
    Ev.TRANSACTION_PAYLOAD: _unsupported(
        "a compressed transaction payload", "set binlog_transaction_compression=OFF"
    ),
    Ev.PARTIAL_UPDATE: _unsupported(
        "a partial JSON update", "set binlog_row_value_options='' (full JSON images)"
    ),
}
