"""Binlog event framing: type codes, column type codes, character sets and small readers.

The lowest layer of the binlog decoder (no opendms imports): the 19-byte event
header, the event and column type codes of MySQL and MariaDB, the collation ->
character set -> Python codec tables (with MySQL's own latin1), length-encoded
integers, MariaDB's compressed format, the exceptions a malformed event raises, and
the kinds of rows events.
"""

from __future__ import annotations

import codecs
import struct
import zlib

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


NUMERIC = {
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
BLOBS = {Col.TINY_BLOB, Col.MEDIUM_BLOB, Col.LONG_BLOB, Col.BLOB, Col.BLOB_COMPRESSED}
ONE_BYTE_META = BLOBS | {
    Col.FLOAT,
    Col.DOUBLE,
    Col.GEOMETRY,
    Col.JSON,
    Col.TIMESTAMP2,
    Col.DATETIME2,
    Col.TIME2,
}
TWO_BYTE_META = {
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
CHARACTER = {Col.STRING, Col.VAR_STRING, Col.VARCHAR, Col.VARCHAR_COMPRESSED} | BLOBS

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


def lenenc_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
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


# ----------------------------------------------------------------------------- numbers

U16 = struct.Struct("<H").unpack_from
I16 = struct.Struct("<h").unpack_from
U32 = struct.Struct("<I").unpack_from
I32 = struct.Struct("<i").unpack_from
U64 = struct.Struct("<Q").unpack_from
I64 = struct.Struct("<q").unpack_from
F32 = struct.Struct("<f").unpack_from
F64 = struct.Struct("<d").unpack_from
U32BE = struct.Struct(">I").unpack_from

# What a malformed event or value raises while it is decoded (DecodeError to callers).
DECODE_ERRORS = (
    ValueError,
    IndexError,
    KeyError,
    struct.error,
    zlib.error,
    OverflowError,
    RecursionError,  # JSON nested deeper than the interpreter's stack
)

# ----------------------------------------------------------------------------- rows events

ROWS_WRITE, ROWS_UPDATE, ROWS_DELETE = 1, 2, 3

# Rows event type -> (rows kind, event version, compressed rows).
ROWS_KINDS = {
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
