"""Binlog decoding from hand-built events (no server): values, transactions, DDL."""

from __future__ import annotations

import datetime as dt
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

import pyarrow as pa
import pytest

from opendms.changes import BinlogPosition, Change, ColumnChange, Op, Transaction
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.binlog.decoder import BinlogDecoder
from opendms.endpoints.mysql.binlog.events import ZERO_DATE, Col, Ev, uncompress
from opendms.endpoints.mysql.binlog.gtid import GtidState
from opendms.endpoints.mysql.binlog.jsonb import mysql_json_text
from opendms.endpoints.mysql.binlog.statements import classify
from opendms.endpoints.mysql.binlogclient import MAX_PACKET, BinlogClient, BinlogServerError
from opendms.errors import TaskError
from opendms.model import ColumnType, Kind, T


def N(kind: Kind, native: str, **params: Any) -> ColumnType:  # noqa: N802 - like T
    """A canonical type carrying the MySQL type it was declared as."""
    return T(kind, native=native, **params)


UTC = dt.UTC
STAMP = 1_700_000_000

# ----------------------------------------------------------------------------- builders


def event(kind: int, body: bytes, log_pos: int = 0, server: int = 1, flags: int = 0) -> bytes:
    """An event as the server sends it: header, body, CRC32."""
    size = 19 + len(body) + 4
    head = struct.pack("<IBIIIH", STAMP, kind, server, size, log_pos, flags)
    return head + body + struct.pack("<I", zlib.crc32(head + body))


def lenenc(n: int) -> bytes:
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n)
    return b"\xfd" + n.to_bytes(3, "little")


def lstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return lenenc(len(raw)) + raw


@dataclass
class C:
    """A column of a hand-built table map."""

    name: str
    type: int
    meta: bytes = b""
    nullable: bool = True
    unsigned: bool = False
    charset: int | None = None  # collation id for character columns
    labels: tuple[str, ...] = ()


NUMERIC = {Col.TINY, Col.SHORT, Col.INT24, Col.LONG, Col.LONGLONG, Col.NEWDECIMAL}
NUMERIC |= {Col.FLOAT, Col.DOUBLE, Col.YEAR}


def table_map(table_id: int, schema: str, table: str, cols: list[C], pk: list[int]) -> bytes:
    """TABLE_MAP body with the optional metadata of binlog_row_metadata=FULL."""
    body = table_id.to_bytes(6, "little") + b"\x01\x00"
    body += bytes([len(schema)]) + schema.encode() + b"\0"
    body += bytes([len(table)]) + table.encode() + b"\0"
    body += lenenc(len(cols))
    body += bytes(Col.STRING if c.type in (Col.ENUM, Col.SET) else c.type for c in cols)
    meta = b"".join(c.meta for c in cols)
    body += lenenc(len(meta)) + meta
    nulls = sum(1 << i for i, c in enumerate(cols) if c.nullable)
    body += nulls.to_bytes((len(cols) + 7) // 8, "little")
    signs = [c.unsigned for c in cols if c.type in NUMERIC]
    bits = sum(0x80 >> (i % 8) << (8 * (i // 8)) for i, s in enumerate(signs) if s)
    opt = tlv(1, bits.to_bytes((len(signs) + 7) // 8, "little")) if signs else b""
    charsets = [c.charset for c in cols if c.charset is not None]
    if charsets:
        opt += tlv(3, b"".join(lenenc(x) for x in charsets))
    opt += tlv(4, b"".join(lstr(c.name) for c in cols))
    sets = [c.labels for c in cols if c.type == Col.SET]
    enums = [c.labels for c in cols if c.type == Col.ENUM]
    if sets:
        opt += tlv(5, b"".join(lenenc(len(s)) + b"".join(lstr(x) for x in s) for s in sets))
    if enums:
        opt += tlv(6, b"".join(lenenc(len(s)) + b"".join(lstr(x) for x in s) for s in enums))
    if enums or sets:
        opt += tlv(10, lenenc(45))
    if pk:
        opt += tlv(8, b"".join(lenenc(i) for i in pk))
    return body + opt


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + lenenc(len(value)) + value


def image(values: Sequence[bytes | None], pad: bool = True) -> bytes:
    """One row image: null bitmap (unused bits set, as MariaDB does) + values."""
    nbytes = (len(values) + 7) // 8
    nulls = sum(1 << i for i, v in enumerate(values) if v is None)
    if pad:
        nulls |= ((1 << (8 * nbytes)) - 1) & ~((1 << len(values)) - 1)
    return nulls.to_bytes(nbytes, "little") + b"".join(v for v in values if v is not None)


def rows_body(table_id: int, ncols: int, rows: list[bytes], update: bool = False) -> bytes:
    mask = ((1 << ncols) - 1).to_bytes((ncols + 7) // 8, "little")
    body = table_id.to_bytes(6, "little") + b"\x01\x00" + lenenc(ncols) + mask
    return body + (mask if update else b"") + b"".join(rows)


def gtid_event(seq: int, domain: int = 0, flags: int = 0, log_pos: int = 0) -> bytes:
    return event(Ev.GTID, struct.pack("<QIB", seq, domain, flags) + b"\0" * 6, log_pos)


def xid_event(xid: int, log_pos: int) -> bytes:
    return event(Ev.XID, struct.pack("<Q", xid), log_pos)


def query_event(sql: str, db: str = "db", log_pos: int = 0) -> bytes:
    body = struct.pack("<IIBHH", 1, 0, len(db), 0, 0) + db.encode() + b"\0" + sql.encode()
    return event(Ev.QUERY, body, log_pos)


# value encoders (the storage formats, written from the MySQL documentation)


def i8(v: int) -> bytes:
    return struct.pack("<b" if v < 0x80 else "<B", v)


def dec(value: str, precision: int, scale: int) -> bytes:
    """MySQL's binary DECIMAL: 9 digits per 4 bytes, sign bit, negatives inverted."""
    d = Decimal(value)
    negative = d < 0
    whole, _, frac = format(d.copy_abs(), "f").partition(".")
    frac = frac.ljust(scale, "0")
    whole = whole.zfill(precision - scale)[-(precision - scale) :] if precision > scale else ""
    sizes = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
    out = b""
    lead = len(whole) % 9
    if lead:
        out += int(whole[:lead]).to_bytes(sizes[lead], "big")
    for k in range(lead, len(whole), 9):
        out += int(whole[k : k + 9]).to_bytes(4, "big")
    for k in range(0, len(frac) - len(frac) % 9, 9):
        out += int(frac[k : k + 9]).to_bytes(4, "big")
    if len(frac) % 9:
        tail = frac[len(frac) - len(frac) % 9 :]
        out += int(tail).to_bytes(sizes[len(tail)], "big")
    raw = bytearray(out)
    raw[0] ^= 0x80
    if negative:
        raw = bytearray(b ^ 0xFF for b in raw)
    return bytes(raw)


def frac(micros: int, fsp: int) -> bytes:
    n = (fsp + 1) // 2
    if n == 0:
        return b""
    unit = {1: 10000, 2: 100, 3: 1}[n]
    return (micros // unit).to_bytes(n, "big")


def datetime2(v: dt.datetime | tuple[int, ...], fsp: int = 0) -> bytes:
    y, mo, d, h, mi, s, us = v if isinstance(v, tuple) else (*v.timetuple()[:6], v.microsecond)
    packed = ((y * 13 + mo) << 22) | (d << 17) | (h << 12) | (mi << 6) | s
    return (packed + 0x8000000000).to_bytes(5, "big") + frac(us, fsp)


def timestamp2(seconds: int, micros: int = 0, fsp: int = 0) -> bytes:
    return seconds.to_bytes(4, "big") + frac(micros, fsp)


def time2(h: int, m: int, s: int, us: int = 0, fsp: int = 0, negative: bool = False) -> bytes:
    """TIME2 as MySQL's my_time_packed_to_binary writes it: the integer part shifted
    (floor), the fraction as C's truncating remainder (negative for negative times)."""
    packed = (((h << 12) | (m << 6) | s) << 24) + us
    if negative:
        packed = -packed
    if fsp in (5, 6):
        return (packed + 0x800000000000).to_bytes(6, "big")
    whole = packed >> 24
    part = -(-packed % (1 << 24)) if packed < 0 else packed % (1 << 24)
    head = (whole + 0x800000).to_bytes(3, "big")
    if fsp == 0:
        return head
    n = (fsp + 1) // 2
    unit = 10000 if n == 1 else 100
    stored = -(-part // unit) if part < 0 else part // unit
    return head + (stored % (1 << (8 * n))).to_bytes(n, "big")


def date3(y: int, m: int, d: int) -> bytes:
    return ((y << 9) | (m << 5) | d).to_bytes(3, "little")


def var(raw: bytes, lenbytes: int = 1) -> bytes:
    return len(raw).to_bytes(lenbytes, "little") + raw


# ----------------------------------------------------------------------------- helpers


def decode_insert(cols: list[C], rows: Sequence[Sequence[bytes | None]], **kw: Any) -> list[Change]:
    """Feed GTID, TABLE_MAP, WRITE_ROWS, XID; the changes of the transaction."""
    dec_ = BinlogDecoder(file="bin.000001", gtid="0-1-1", **kw)
    return feed_all(dec_, table_events(cols, [image(r) for r in rows]))[0].changes


def table_events(
    cols: list[C], rows: list[bytes], kind: int = Ev.WRITE_V1, pk: list[int] | None = None
) -> list[bytes]:
    return [
        gtid_event(2, log_pos=200),
        event(Ev.TABLE_MAP, table_map(7, "db", "t", cols, pk or []), 300),
        event(kind, rows_body(7, len(cols), rows, kind in (Ev.UPDATE_V1, Ev.UPDATE_V2)), 400),
        xid_event(99, 500),
    ]


def feed_all(dec_: BinlogDecoder, events: list[bytes]) -> list[Transaction]:
    out = []
    for ev in events:
        txn = dec_.feed(ev)
        if txn is not None:
            out.append(txn)
    return out


def pos(txn: Transaction) -> BinlogPosition:
    """The binlog position a decoded transaction ends at."""
    assert isinstance(txn.end, BinlogPosition)
    return txn.end


def one(col: C, raw: bytes | None, **kw: Any) -> Any:
    """Decode one value of one column (with an id column before it)."""
    cols = [C("id", Col.LONG, nullable=False), col]
    return decode_insert(cols, [[struct.pack("<i", 1), raw]], **kw)[0].values[1]


def one_error(col: C, raw: bytes) -> str:
    """The error of a one-row insert whose value cannot be decoded: a change with
    ``error`` set, carrying the id it could decode."""
    cols = [C("id", Col.LONG, nullable=False), col]
    (change,) = decode_insert(cols, [[struct.pack("<i", 1), raw]])
    assert change.error and change.values[0] == 1 and change.columns == ("id", col.name)
    return change.error


# ----------------------------------------------------------------------------- values


def test_integers_signed_unsigned_edges() -> None:
    cols = [
        C("a", Col.TINY),
        C("b", Col.TINY, unsigned=True),
        C("c", Col.SHORT),
        C("d", Col.SHORT, unsigned=True),
        C("e", Col.INT24),
        C("f", Col.INT24, unsigned=True),
        C("g", Col.LONG),
        C("h", Col.LONG, unsigned=True),
        C("i", Col.LONGLONG),
        C("j", Col.LONGLONG, unsigned=True),
    ]
    low = [
        i8(-128),
        b"\x00",
        struct.pack("<h", -32768),
        b"\0\0",
        (-8388608).to_bytes(3, "little", signed=True),
        b"\0\0\0",
        struct.pack("<i", -(2**31)),
        b"\0" * 4,
        struct.pack("<q", -(2**63)),
        b"\0" * 8,
    ]
    high = [
        i8(127),
        b"\xff",
        struct.pack("<h", 32767),
        b"\xff\xff",
        (8388607).to_bytes(3, "little", signed=True),
        b"\xff\xff\xff",
        struct.pack("<i", 2**31 - 1),
        b"\xff" * 4,
        struct.pack("<q", 2**63 - 1),
        b"\xff" * 8,
    ]
    changes = decode_insert(cols, [low, high, [None] * 10])
    assert [c.values for c in changes] == [
        (-128, 0, -32768, 0, -8388608, 0, -(2**31), 0, -(2**63), Decimal(0)),
        (127, 255, 32767, 65535, 8388607, 16777215, 2**31 - 1, 2**32 - 1, 2**63 - 1,
         Decimal("18446744073709551615")),
        (None,) * 10,
    ]  # fmt: skip
    assert type(changes[1].values[9]) is Decimal


@pytest.mark.parametrize(
    ("value", "precision", "scale"),
    [
        ("1234567890.1234", 14, 4),
        ("-1234567890.1234", 14, 4),
        ("0.00", 10, 2),
        ("-0.01", 10, 2),
        ("99999999.99", 10, 2),
        ("-99999", 5, 0),
        ("0", 5, 0),
        ("123456789012345678901234567890123.123456789012345678901234567890", 63, 30),
        ("-12345678901234567890123456789012345.123456789012345678901234567890", 65, 30),
        ("0.000000000000000000000000000001", 65, 30),
        ("0.123456789", 9, 9),
        ("123456789", 9, 0),
    ],
)
def test_decimal(value: str, precision: int, scale: int) -> None:
    col = C("v", Col.NEWDECIMAL, bytes([precision, scale]))
    got = one(col, dec(value, precision, scale))
    assert got == Decimal(value) and got.as_tuple().exponent == -scale
    with localcontext() as ctx:
        ctx.prec = 100
        assert str(got) == str(Decimal(value).quantize(Decimal(1).scaleb(-scale)))


def test_decimal_matches_the_documented_bytes() -> None:
    """The example of the MySQL manual: DECIMAL(14,4) 1234567890.1234 and its negative."""
    assert dec("1234567890.1234", 14, 4).hex() == "810dfb38d204d2"
    assert dec("-1234567890.1234", 14, 4).hex() == "7ef204c72dfb2d"
    col = C("v", Col.NEWDECIMAL, bytes([14, 4]))
    assert one(col, bytes.fromhex("7ef204c72dfb2d")) == Decimal("-1234567890.1234")


def test_floats_year_bit() -> None:
    cols = [
        C("f", Col.FLOAT, b"\x04"),
        C("d", Col.DOUBLE, b"\x08"),
        C("y", Col.YEAR, unsigned=True),
        C("b1", Col.BIT, b"\x01\x00"),
        C("b10", Col.BIT, b"\x02\x01"),
        C("b64", Col.BIT, b"\x00\x08"),
    ]
    row = [
        struct.pack("<f", 1.1),
        struct.pack("<d", 5e-324),
        bytes([255]),
        b"\x01",
        (1023).to_bytes(2, "big"),
        (2**63 - 1).to_bytes(8, "big"),
    ]
    values = decode_insert(cols, [row, [None, None, b"\x00", b"\x00", b"\x00\x05", b"\0" * 8]])
    assert values[0].values == (
        struct.unpack("<f", struct.pack("<f", 1.1))[0],
        5e-324,
        2155,
        True,
        1023,
        2**63 - 1,
    )
    assert values[1].values == (None, None, 0, False, 5, 0)  # fmt: skip
    message = one_error(C("b64", Col.BIT, b"\x00\x08"), (2**64 - 1).to_bytes(8, "big"))
    assert "column b64: BIT value 18446744073709551615 does not fit" in message


def test_dates_and_datetimes() -> None:
    cols = [
        C("d", Col.DATE),
        C("t0", Col.DATETIME2, b"\x00"),
        C("t2", Col.DATETIME2, b"\x02"),
        C("t3", Col.DATETIME2, b"\x03"),
        C("t6", Col.DATETIME2, b"\x06"),
    ]
    row = [
        date3(1000, 1, 1),
        datetime2(dt.datetime(9999, 12, 31, 23, 59, 59)),
        datetime2(dt.datetime(2024, 2, 29, 1, 2, 3, 450000), 2),
        datetime2(dt.datetime(2024, 2, 29, 1, 2, 3, 123000), 3),
        datetime2(dt.datetime(1000, 1, 1, 0, 0, 0, 1), 6),
    ]
    assert decode_insert(cols, [row])[0].values == (
        dt.date(1000, 1, 1),
        dt.datetime(9999, 12, 31, 23, 59, 59),
        dt.datetime(2024, 2, 29, 1, 2, 3, 450000),
        dt.datetime(2024, 2, 29, 1, 2, 3, 123000),
        dt.datetime(1000, 1, 1, 0, 0, 0, 1),
    )


def test_zero_dates_are_row_level_data_errors() -> None:
    assert one_error(C("d", Col.DATE), date3(2024, 0, 5)) == f"column d: {ZERO_DATE}"
    assert ZERO_DATE in one_error(C("d", Col.DATE), date3(0, 0, 0))
    assert ZERO_DATE in one_error(
        C("t", Col.DATETIME2, b"\x00"), datetime2((2024, 3, 0, 1, 1, 1, 0))
    )
    assert ZERO_DATE in one_error(C("z", Col.TIMESTAMP2, b"\x00"), timestamp2(0))
    assert "invalid date" in one_error(C("d", Col.DATE), date3(2024, 2, 30))


def test_timestamps_are_aware_utc() -> None:
    cols = [C("a", Col.TIMESTAMP2, b"\x00"), C("b", Col.TIMESTAMP2, b"\x06")]
    row = [timestamp2(1), timestamp2(2147483647, 999999, 6)]
    assert decode_insert(cols, [row])[0].values == (
        dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
    )


def interval(hours: int, minutes: int, seconds: int, micros: int = 0, sign: int = 1) -> Any:
    total = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros
    return pa.MonthDayNano([0, 0, sign * total * 1000])  # type: ignore[call-arg,arg-type]


@pytest.mark.parametrize("fsp", [0, 1, 2, 3, 4, 5, 6])
def test_times_are_signed_durations(fsp: int) -> None:
    """MySQL TIME holds -838:59:59 .. 838:59:59: decoded as an interval (before: a time of
    day, and everything outside 00:00-23:59 was a data error)."""
    micros = {0: 0, 1: 500000, 2: 450000, 3: 123000, 4: 123400, 5: 123450, 6: 123456}[fsp]
    col = C("t", Col.TIME2, bytes([fsp]))
    assert one(col, time2(23, 59, 58, micros, fsp)) == interval(23, 59, 58, micros)
    assert one(col, time2(0, 0, 0, 0, fsp)) == interval(0, 0, 0)
    assert one(col, time2(838, 59, 59, 0, fsp)) == interval(838, 59, 59)
    assert one(col, time2(24, 0, 0, 0, fsp)) == interval(24, 0, 0)
    negative = time2(1, 2, 3, micros, fsp, negative=True)
    assert one(col, negative) == interval(1, 2, 3, micros, sign=-1)
    assert one(col, time2(838, 59, 59, 0, fsp, negative=True)) == interval(838, 59, 59, sign=-1)
    if micros:
        assert one(col, time2(0, 0, 0, micros, fsp, negative=True)) == interval(
            0, 0, 0, micros, sign=-1
        )


def test_pre_5_6_times_are_signed_durations() -> None:
    col = C("t", Col.TIME)
    assert one(col, (8385959).to_bytes(3, "little", signed=True)) == interval(838, 59, 59)
    assert one(col, (-123000).to_bytes(3, "little", signed=True)) == interval(12, 30, 0, sign=-1)


def test_strings_in_their_charsets() -> None:
    cols = [
        C("v1", Col.VARCHAR, struct.pack("<H", 80), charset=45),
        C("v2", Col.VARCHAR, struct.pack("<H", 1200), charset=45),
        C("l1", Col.VARCHAR, struct.pack("<H", 20), charset=8),
        C("c", Col.STRING, bytes([Col.STRING, 20]), charset=45),
        C("big", Col.STRING, bytes([Col.STRING ^ 0x10, 0x90]), charset=45),
        C("b", Col.STRING, bytes([Col.STRING, 4]), charset=63),
        C("vb", Col.VARCHAR, struct.pack("<H", 10), charset=63),
        C("tx", Col.BLOB, b"\x02", charset=46),
        C("lb", Col.BLOB, b"\x04", charset=63),
        C("tb", Col.BLOB, b"\x01", charset=63),
        C("mt", Col.BLOB, b"\x03", charset=33),
    ]
    text = "héllo 𝄞 😀 \t\n\\ 'q'"
    row = [
        var(text.encode()),
        var(("x" * 300).encode(), 2),
        var("€ café".encode("cp1252")),
        var(b"abc"),
        var("ü".encode() * 200, 2),
        var(b"\x00\xff"),
        var(b"\x00\x01"),
        var(b"{}", 2),
        var(b"\x00" * 5, 4),
        var(b"", 1),
        var("ünï".encode(), 3),
    ]
    assert decode_insert(cols, [row])[0].values == (
        text,
        "x" * 300,
        "€ café",
        "abc",
        "ü" * 200,
        b"\x00\xff\x00\x00",  # BINARY(4): the trailing zero bytes the binlog drops
        b"\x00\x01",
        "{}",
        b"\x00" * 5,
        b"",
        "ünï",
    )
    bad = one_error(C("v", Col.VARCHAR, struct.pack("<H", 80), charset=45), var(b"\xff\xfe"))
    assert "column v: text is not valid utf8mb4" in bad


def test_latin1_is_windows_1252_with_every_byte_a_character() -> None:
    # MySQL maps the five bytes cp1252 leaves undefined to the C1 controls (the full
    # load gets them so): they are valid latin1 text, not a decode error
    col = C("l", Col.VARCHAR, struct.pack("<H", 20), charset=8)
    raw = b"A\x81\x8d\x8f\x90\x9d\x80\xe9"
    (change,) = decode_insert([col], [[var(raw)]])
    assert (change.values, change.error) == (("A\x81\x8d\x8f\x90\x9d€é",), "")


def test_enum_set_and_uuid() -> None:
    cols = [
        C("e", Col.ENUM, bytes([Col.ENUM, 1]), labels=("sad", "ok", "happy")),
        C("s", Col.SET, bytes([Col.SET, 1]), labels=("a", "b", "c")),
        C("u", Col.STRING, bytes([Col.STRING, 16]), charset=63),
    ]
    raw = bytes.fromhex("a0eebc999c0b4ef8bb6d6bb9bd380a11")
    rows = [[b"\x03", b"\x05", var(raw)], [b"\x00", b"\x00", var(raw[:4])]]
    uuids = {("db", "t"): {"u": T(Kind.UUID)}}
    changes = decode_insert(cols, rows, ctypes=uuids)
    assert changes[0].values == ("happy", "a,c", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert changes[1].values == ("", "", "a0eebc99-0000-0000-0000-000000000000")
    assert decode_insert(cols, rows)[0].values[2] == raw  # without the catalog: BINARY(16)


def test_mariadb_compressed_columns() -> None:
    packed = zlib.compressobj(wbits=-15)
    data = packed.compress(b"a" * 300) + packed.flush()
    stored = bytes([0x80 | 0x08 | 2]) + (300).to_bytes(2, "big") + data
    cols = [
        C("z", Col.BLOB_COMPRESSED, b"\x02", charset=45),
        C("v", Col.VARCHAR_COMPRESSED, struct.pack("<H", 401), charset=45),
    ]
    row = [var(stored, 2), var(b"\x00" + b"b" * 90, 2)]
    assert decode_insert(cols, [row])[0].values == ("a" * 300, "b" * 90)
    assert uncompress(b"\x81\x03" + zlib.compress(b"xyz")) == b"xyz"


def test_mysql_json_column() -> None:
    doc = bytes([0x00]) + json_object({"a": json_array([1, True]), "b": "x"})
    col = C("j", Col.JSON, b"\x04")
    assert one(col, var(doc, 4)) == '{"a": [1, true], "b": "x"}'


def json_array(items: list[Any]) -> tuple[int, bytes]:
    """A small JSON array (values inlined: ints and literals only)."""
    count = len(items)
    header = 4 + 3 * count
    entries = b""
    for item in items:
        if item is True:
            entries += bytes([4]) + struct.pack("<H", 1)
        else:
            entries += bytes([5]) + struct.pack("<h", item)
    return 2, struct.pack("<HH", count, header) + entries


def json_object(members: dict[str, Any]) -> bytes:
    """A small JSON object whose values are strings or arrays built by json_array."""
    count = len(members)
    keys = list(members)
    head = 4 + 4 * count + 3 * count
    key_data = b"".join(k.encode() for k in keys)
    key_entries, values_data, value_entries = b"", b"", b""
    offset = head
    for k in keys:
        key_entries += struct.pack("<HH", offset, len(k))
        offset += len(k)
    for k in keys:
        v = members[k]
        if isinstance(v, tuple):
            kind, raw = v
        else:
            kind, raw = 12, bytes([len(v)]) + v.encode()
        value_entries += bytes([kind]) + struct.pack("<H", offset + len(values_data))
        values_data += raw
    body = key_entries + value_entries + key_data + values_data
    return struct.pack("<HH", count, 4 + len(body)) + body


def test_mysql_json_scalars() -> None:
    assert mysql_json_text(b"") == "null"
    assert mysql_json_text(bytes([4, 0])) == "null"
    assert mysql_json_text(bytes([12, 3]) + "𝄞".encode()[:3]).startswith('"')
    assert mysql_json_text(bytes([11]) + struct.pack("<d", 1.5)) == "1.5"
    assert mysql_json_text(bytes([9]) + struct.pack("<q", -(2**63))) == str(-(2**63))
    opaque_decimal = bytes([15, Col.NEWDECIMAL, 2 + 3, 5, 2]) + dec("-12.50", 5, 2)
    assert mysql_json_text(opaque_decimal) == "-12.50"
    digits = dec("0.0000000000", 12, 10)
    zero = bytes([15, Col.NEWDECIMAL, 2 + len(digits), 12, 10]) + digits
    assert mysql_json_text(zero) == "0.0000000000"  # as MySQL shows it, not 0E-10


def test_mysql_json_times_keep_hours_beyond_a_day() -> None:
    """A TIME inside a JSON document has a 10-bit hour (before: cut to 5 bits, 838 -> 6)."""

    def opaque_time(hours: int, micros: int = 0, sign: int = 1) -> bytes:
        packed = sign * ((((hours << 12) | (59 << 6) | 58) << 24) + micros)
        return bytes([15, Col.TIME, 8]) + struct.pack("<q", packed)

    assert mysql_json_text(opaque_time(838)) == '"838:59:58.000000"'
    assert mysql_json_text(opaque_time(12, 5, sign=-1)) == '"-12:59:58.000005"'


# ----------------------------------------------------------------------------- rows and keys


def test_nulls_not_null_columns_and_padding_bits() -> None:
    cols = [
        C("id", Col.LONG, nullable=False),
        C("a", Col.VARCHAR, b"\x14\x00", charset=45),
        C("b", Col.LONG),
    ]
    rows = [
        [struct.pack("<i", 1), None, struct.pack("<i", 5)],
        [struct.pack("<i", 2), var(b"x"), None],
    ]
    assert [c.values for c in decode_insert(cols, rows)] == [(1, None, 5), (2, "x", None)]


def test_update_key_is_the_primary_key_before_image_in_key_order() -> None:
    cols = [C("a", Col.LONG), C("b", Col.VARCHAR, b"\x14\x00", charset=45), C("c", Col.LONG)]
    before = image([struct.pack("<i", 1), var(b"k"), struct.pack("<i", 3)])
    after = image([struct.pack("<i", 10), var(b"k2"), None])
    events = table_events(cols, [before + after], Ev.UPDATE_V1, pk=[1, 0])
    [txn] = feed_all(BinlogDecoder(file="bin.000001"), events)
    assert txn.changes == [
        Change(Op.UPDATE, "db", "t", ("a", "b", "c"), (10, "k2", None), ("b", "a"), ("k", 1))
    ]


def test_delete_without_primary_key_keys_on_all_columns_v2_events() -> None:
    cols = [C("a", Col.LONG), C("b", Col.DOUBLE, b"\x08")]
    old = image([struct.pack("<i", 4), None])
    events = table_events(cols, [old], Ev.DELETE_V1)
    body = events[2][19:-4]
    events[2] = event(Ev.DELETE_V2, body[:8] + b"\x02\x00" + body[8:], 400)  # extra data: none
    [txn] = feed_all(BinlogDecoder(file="bin.000001"), events)
    assert txn.changes == [Change(Op.DELETE, "db", "t", key_columns=("a", "b"), key=(4, None))]


def test_partial_images_carry_only_the_present_columns() -> None:
    cols = [C("a", Col.LONG), C("b", Col.LONG), C("c", Col.LONG)]
    body = (7).to_bytes(6, "little") + b"\x01\x00" + lenenc(3) + bytes([0b101])
    body += image([struct.pack("<i", 1), struct.pack("<i", 3)])
    dec_ = BinlogDecoder(file="bin.000001")
    events = [*table_events(cols, [])[:2], event(Ev.WRITE_V1, body, 400), xid_event(1, 500)]
    [txn] = feed_all(dec_, events)
    assert txn.changes == [Change(Op.INSERT, "db", "t", ("a", "c"), (1, 3))]


def test_many_rows_in_one_event() -> None:
    cols = [C("id", Col.LONGLONG, nullable=False), C("v", Col.VARCHAR, b"\x14\x00", charset=45)]
    rows = [[struct.pack("<q", i), var(f"v{i}".encode()) if i % 3 else None] for i in range(500)]
    changes = decode_insert(cols, rows)
    assert [c.values for c in changes] == [(i, f"v{i}" if i % 3 else None) for i in range(500)]


def test_compressed_rows_event() -> None:
    cols = [C("id", Col.LONG, nullable=False)]
    rows = image([struct.pack("<i", 5)]) + image([struct.pack("<i", 6)])
    payload = bytes([0x80 | 1, len(rows)]) + zlib.compress(rows)
    body = (7).to_bytes(6, "little") + b"\x01\x00" + lenenc(1) + b"\x01" + payload
    events = table_events(cols, [])
    events[2] = event(Ev.WRITE_COMPRESSED_V1, body, 400)
    [txn] = feed_all(BinlogDecoder(file="bin.000001"), events)
    assert [c.values for c in txn.changes] == [(5,), (6,)]


# ----------------------------------------------------------------------------- transactions


def test_mariadb_transaction_position_gtid_and_time() -> None:
    cols = [C("id", Col.LONG, nullable=False)]
    dec_ = BinlogDecoder(file="mariadb-bin.000003", gtid="0-1-1,1-5-9")
    [txn] = feed_all(dec_, table_events(cols, [image([struct.pack("<i", 1)])]))
    assert txn.end == BinlogPosition(3, 500, "mariadb-bin.000003", "0-1-2,1-5-9")
    assert str(txn.end) == "mariadb-bin.000003:500@0-1-2,1-5-9"
    assert txn.commit_time == dt.datetime.fromtimestamp(STAMP, UTC)
    assert txn.xid == 99
    assert dec_.position == BinlogPosition(3, 500, "mariadb-bin.000003")


def test_rotate_format_description_and_checksum_off() -> None:
    dec_ = BinlogDecoder(file="", checksum=True)
    rotate = event(Ev.ROTATE, struct.pack("<Q", 4) + b"mysql-bin.000007", 0, flags=0x20)
    assert dec_.feed(rotate) is None
    assert (dec_.file, dec_.file_number, dec_.offset) == ("mysql-bin.000007", 7, 4)
    fde_body = struct.pack("<H", 4) + b"8.0.36".ljust(50, b"\0") + struct.pack("<IB", 0, 19)
    fde_body += bytes(40) + b"\x00"  # post-header lengths, checksum algorithm NONE
    dec_.feed(event(Ev.FORMAT_DESCRIPTION, fde_body, 120))
    assert dec_.crc == 0 and not dec_.mariadb
    head = struct.pack("<IBIIIH", STAMP, Ev.XID, 1, 19 + 8, 300, 0)
    txn = dec_.feed(head + struct.pack("<Q", 5))  # no CRC any more
    assert txn is not None and txn.end == BinlogPosition(7, 300, "mysql-bin.000007")


def test_mysql_gtids_and_begin_commit_queries() -> None:
    uuid = bytes.fromhex("3e11fa47-71ca-11e1-9e33-c80aa9429562".replace("-", ""))
    state = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"
    dec_ = BinlogDecoder(file="binlog.000001", gtid=state, mariadb=False)
    gtid = event(Ev.GTID_LOG, b"\x01" + uuid + struct.pack("<Q", 6) + bytes(10), 100)
    events = [gtid, query_event("BEGIN", log_pos=150), xid_event(3, 200)]
    events += [event(Ev.GTID_LOG, b"\x01" + uuid + struct.pack("<Q", 8) + bytes(10), 250)]
    events += [query_event("CREATE TABLE x (a int)", log_pos=300)]
    first, second = feed_all(dec_, events)
    assert pos(first).gtid == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-6"
    assert pos(second).gtid == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-6:8"
    assert second.changes == [] and pos(second).offset == 300


def test_gtid_state_text() -> None:
    state = GtidState("1-2-3,0-1-10")
    state.add_mariadb(0, 1, 11)
    assert str(state) == "0-1-11,1-2-3"
    assert str(GtidState(None)) == ""
    unknown = GtidState(None)
    unknown.merge_list([(0, 1, 5)])
    assert str(unknown) == "0-1-5"


def test_rollback_and_other_tables_give_empty_transactions() -> None:
    cols = [C("id", Col.LONG, nullable=False)]
    dec_ = BinlogDecoder(file="bin.000001", captured={("db", "other")})
    events = table_events(cols, [image([struct.pack("<i", 1)])])
    [skipped] = feed_all(dec_, events)
    assert skipped.changes == [] and pos(skipped).offset == 500
    dec_ = BinlogDecoder(file="bin.000001")
    events = [*table_events(cols, [image([struct.pack("<i", 1)])])[:3], query_event("ROLLBACK")]
    [rolled] = feed_all(dec_, events)
    assert rolled.changes == []


def test_standalone_ddl_and_truncate() -> None:
    dec_ = BinlogDecoder(file="bin.000001", captured={("db", "t")})
    events = [
        gtid_event(5, flags=1, log_pos=100),
        query_event("ALTER TABLE t ADD COLUMN n INT NOT NULL, DROP COLUMN old", log_pos=200),
        gtid_event(6, flags=1, log_pos=250),
        query_event("TRUNCATE t", log_pos=300),
        gtid_event(7, flags=1, log_pos=350),
        query_event("ALTER TABLE db2.t ADD COLUMN n INT", log_pos=400),  # another database
    ]
    ddl, truncate, other = feed_all(dec_, events)
    assert ddl.changes == [
        Change(
            Op.DDL,
            "db",
            "t",
            ddl=(
                ColumnChange("add", "n", N(Kind.INT32, "int"), nullable=False),
                ColumnChange("drop", "old"),
            ),
        )
    ]
    assert truncate.changes == [Change(Op.TRUNCATE, "db", "t")]
    assert other.changes == [] and other.xid == 7


def test_ddl_to_uuid_recompiles_the_table() -> None:
    cols = [C("u", Col.STRING, bytes([Col.STRING, 16]), charset=63)]
    raw = bytes(range(16))
    dec_ = BinlogDecoder(file="bin.000001")
    [first] = feed_all(dec_, table_events(cols, [image([var(raw)])]))
    assert first.changes[0].values == (raw,)
    feed_all(dec_, [gtid_event(3, flags=1), query_event("ALTER TABLE t MODIFY u UUID")])
    [second] = feed_all(dec_, table_events(cols, [image([var(raw)])]))
    assert second.changes[0].values == ("00010203-0405-0607-0809-0a0b0c0d0e0f",)


def test_unsupported_events_and_missing_metadata_are_task_errors() -> None:
    dec_ = BinlogDecoder(file="bin.000001")
    with pytest.raises(TaskError, match="binlog_transaction_compression=OFF"):
        dec_.feed(event(Ev.TRANSACTION_PAYLOAD, b"\0" * 10, 100))
    body = table_map(7, "db", "t", [C("a", Col.LONG)], [])
    body = body[: body.index(b"\x04\x02\x01a")]  # without the column names
    with pytest.raises(TaskError, match="binlog_row_metadata=FULL"):
        dec_.feed(event(Ev.TABLE_MAP, body, 200))


def test_heartbeat_and_ignored_events() -> None:
    dec_ = BinlogDecoder(file="bin.000002", offset=900)
    assert dec_.feed(event(Ev.HEARTBEAT, b"bin.000002", 1234)) is None
    assert dec_.heartbeat == BinlogPosition(2, 1234, "bin.000002")
    assert dec_.offset == 900
    assert dec_.feed(event(Ev.ANNOTATE_ROWS, b"insert ...", 1000)) is None
    assert dec_.offset == 1000


# ----------------------------------------------------------------------------- statements


@pytest.mark.parametrize(
    ("sql", "changes"),
    [
        (
            "ALTER TABLE `db`.`t` ADD COLUMN `x y` VARCHAR(20) CHARACTER SET utf8mb4 NULL AFTER a",
            [ColumnChange("add", "x y", N(Kind.STRING, "varchar(20)", length=20))],
        ),
        (
            "alter table t add (a int unsigned not null, b enum('it''s','b') default 'b')",
            [
                ColumnChange("add", "a", N(Kind.INT64, "int unsigned"), nullable=False),
                ColumnChange("add", "b", N(Kind.ENUM, "enum('it''s','b')", labels=("it's", "b"))),
            ],
        ),
        (
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS d DECIMAL, ADD c CHAR, ADD bb BINARY",
            [
                ColumnChange("add", "d", N(Kind.DECIMAL, "decimal", precision=10, scale=0)),
                ColumnChange("add", "c", N(Kind.STRING, "char", length=1, fixed=True)),
                ColumnChange("add", "bb", N(Kind.BINARY, "binary", length=1, fixed=True)),
            ],
        ),
        (
            "ALTER TABLE t MODIFY COLUMN ts DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), "
            "MODIFY j JSON, MODIFY u UUID, MODIFY f FLOAT(30), MODIFY b BIT(1), MODIFY y YEAR",
            [
                ColumnChange(
                    "alter_type",
                    "ts",
                    N(Kind.TIMESTAMP, "datetime(6)", precision=6),
                    nullable=False,
                ),
                ColumnChange("alter_type", "j", T(Kind.JSON)),
                ColumnChange("alter_type", "u", N(Kind.UUID, "uuid")),
                ColumnChange("alter_type", "f", N(Kind.FLOAT64, "double")),
                ColumnChange("alter_type", "b", N(Kind.BOOL, "bit(1)")),
                ColumnChange("alter_type", "y", N(Kind.INT16, "year")),
            ],
        ),
        (
            "ALTER TABLE t CHANGE COLUMN old new BIGINT UNSIGNED, CHANGE same same BOOLEAN",
            [
                ColumnChange("rename", "old", new_name="new"),
                ColumnChange(
                    "alter_type", "new", N(Kind.DECIMAL, "bigint unsigned", precision=20, scale=0)
                ),
                ColumnChange("alter_type", "same", N(Kind.INT16, "tinyint")),
            ],
        ),
        (
            "ALTER /* c */ TABLE t RENAME COLUMN a TO b, DROP COLUMN IF EXISTS c, DROP d",
            [
                ColumnChange("rename", "a", new_name="b"),
                ColumnChange("drop", "c"),
                ColumnChange("drop", "d"),
            ],
        ),
        (
            "ALTER TABLE t ADD INDEX i (a), DROP PRIMARY KEY, ADD PRIMARY KEY (a, b), "
            "ALTER COLUMN a SET DEFAULT 1, ENGINE=InnoDB, DROP INDEX j, RENAME TO t2",
            [],
        ),
        (
            "ALTER TABLE t MODIFY v VARCHAR(10) CHARACTER SET binary, "
            "MODIFY tx TEXT CHARSET binary, MODIFY n NUMERIC(65,30), "
            "MODIFY dp DOUBLE PRECISION, MODIFY m MEDIUMINT UNSIGNED",
            [
                ColumnChange("alter_type", "v", N(Kind.BINARY, "varbinary(10)", length=10)),
                ColumnChange("alter_type", "tx", N(Kind.BINARY, "blob")),
                ColumnChange(
                    "alter_type", "n", N(Kind.DECIMAL, "decimal(65,30)", precision=65, scale=30)
                ),
                ColumnChange("alter_type", "dp", N(Kind.FLOAT64, "double")),
                ColumnChange("alter_type", "m", N(Kind.INT32, "mediumint unsigned")),
            ],
        ),
    ],
)
def test_alter_table_column_changes(sql: str, changes: list[ColumnChange]) -> None:
    st = classify(sql, "db")
    assert (st.kind, st.schema, st.table) == ("alter", "db", "t")
    assert list(st.ddl) == changes


def test_statement_kinds() -> None:
    assert classify("BEGIN", "d").kind == "begin"
    assert classify("COMMIT /* implicit */", "d").kind == "commit"
    assert classify("ROLLBACK", "d").kind == "rollback"
    assert classify("ROLLBACK TO SAVEPOINT s", "d").kind == "savepoint"
    assert classify("XA START 'x'", "d").kind == "xa"
    assert classify("TRUNCATE TABLE `a`.`b`", "d") == classify("truncate a.b", "x")
    assert classify("TRUNCATE b", "d").schema == "d"
    assert classify("CREATE TABLE t (a int)", "d").kind == "other"
    assert classify("/*!40000 ALTER TABLE `t` DISABLE KEYS */", "d").kind == "alter"


# ----------------------------------------------------------------------------- more metadata


def test_default_charset_form_and_unsupported_charsets() -> None:
    cols = [
        C("a", Col.VARCHAR, b"\x14\x00"),
        C("b", Col.VARCHAR, b"\x14\x00"),
        C("n", Col.LONG),
    ]
    body = table_map(7, "db", "t", cols, [])
    # DEFAULT_CHARSET (type 2): utf8mb4 for all, latin1 for character column #1
    body += tlv(2, lenenc(45) + lenenc(1) + lenenc(8))
    events = table_events(cols, [image([var("ü".encode()), var(b"\xe9"), struct.pack("<i", 3)])])
    events[1] = event(Ev.TABLE_MAP, body, 300)
    [txn] = feed_all(BinlogDecoder(file="bin.000001"), events)
    assert txn.changes[0].values == ("ü", "é", 3)
    [txn] = feed_all(BinlogDecoder(file="bin.000001", charsets={45: "swe7"}), events)
    assert txn.changes == [
        Change(
            Op.INSERT,
            "db",
            "t",
            ("a", "b", "n"),
            ("ü".encode(), b"\xe9", 3),  # the values it cannot decode as their bytes
            error="column a: character set 'swe7' is not supported; "
            "column b: text is not valid utf8mb4 (unexpected end of data)",  # 8: unknown here
        )
    ]


def test_enum_index_out_of_range_names_the_column() -> None:
    col = C("e", Col.ENUM, bytes([Col.ENUM, 1]), labels=("x",))
    assert "column e: enum value index out of range" in one_error(col, b"\x05")


# ----------------------------------------------------------------------------- packets


def _client() -> BinlogClient:
    return BinlogClient(EndpointURL.parse("mysql://u:secret@127.0.0.1:1/db"), 1)


def packet(payload: bytes, seq: int = 1) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def test_packets_split_across_reads_and_joined_beyond_16mb() -> None:
    client = _client()
    first, second = b"\x00" + b"event-1", b"\x00" + b"event-2"
    stream = packet(first) + packet(second)
    client._buf += stream[:5]
    assert client._events() == []
    client._buf += stream[5:15]
    assert client._events() == [b"event-1"]
    client._buf += stream[15:]
    assert client._events() == [b"event-2"]
    big = b"\x00" + bytes(MAX_PACKET + 9)  # 16 MB + 10 bytes: two packets
    client._buf += packet(big[:MAX_PACKET]) + packet(big[MAX_PACKET:], 2)[:-1]
    assert client._events() == []
    client._buf += b"\x00"
    [event_] = client._events()
    assert len(event_) == MAX_PACKET + 9 and client._buf == bytearray()


def test_error_packet_raises_with_the_server_code() -> None:
    client = _client()
    client._buf += packet(b"\xff" + struct.pack("<H", 1236) + b"#HY000" + b"Could not find")
    with pytest.raises(BinlogServerError) as info:
        client._events()
    assert info.value.code == 1236 and "Could not find" in str(info.value)
    assert "secret" not in str(info.value)


def test_xa_transactions_on_captured_tables_are_task_errors() -> None:
    cols = [C("id", Col.LONG, nullable=False)]
    events = table_events(cols, [image([struct.pack("<i", 1)])])[:3]
    events[0] = gtid_event(2, flags=64, log_pos=200)  # FL_PREPARED_XA
    with pytest.raises(TaskError, match="XA transactions are not supported"):
        feed_all(BinlogDecoder(file="bin.000001"), [*events, query_event("XA END 'x'")])
    mysql = [query_event("XA START 'x'"), *events[1:], event(Ev.XA_PREPARE, bytes(20), 600)]
    with pytest.raises(TaskError, match=r"binlog bin\.000001:600: an XA transaction"):
        feed_all(BinlogDecoder(file="bin.000001", mariadb=False), mysql)
