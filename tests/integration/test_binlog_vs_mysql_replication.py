"""opendms's binlog decoder against mysql-replication on the same binlog events.

Rows of the common column types are inserted, updated and deleted on the private MariaDB;
the row images of those events as ``pymysqlreplication.BinLogStreamReader`` decodes them
and as :class:`BinlogDecoder` does (whole before images: ``old_rows``) must be equal value
by value, once mysql-replication's representation of a type is brought to the canonical one
(each normalisation below says why it is one of representation, not of value).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pytest

from opendms.changes import BinlogPosition, Change, Op
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.binlog.decoder import BinlogDecoder
from opendms.endpoints.mysql.binlogclient import BinlogClient
from opendms.endpoints.mysql.changesource import MySqlChangeSource
from opendms.endpoints.mysql.conn import connect

Image = dict[str, Any]
Event = tuple[str, Image | None, Image | None]  # (op, before image, after image)
UTC = dt.UTC
SET_LABELS = ("a", "b", "c", "d")


def _unsigned_bigint(value: int) -> Decimal:
    """BIGINT UNSIGNED is DECIMAL(20,0) in the canonical types (it overflows int64)."""
    return Decimal(value)


def _bits(value: str) -> int:
    """mysql-replication gives BIT(n) as a text of 0/1 digits; canonical is the integer."""
    return int(value, 2)


def _bit1(value: str) -> bool:
    """BIT(1) is a boolean in the canonical types."""
    return value == "1"


def _set(value: set[str] | None) -> str:
    """mysql-replication gives a SET as a Python set (None when empty); canonical is
    MySQL's text: the labels in definition order joined by commas."""
    return ",".join(label for label in SET_LABELS if label in (value or ()))


def _utc(value: dt.datetime) -> dt.datetime:
    """mysql-replication gives TIMESTAMP as a naive UTC datetime; canonical is UTC-aware."""
    return value.replace(tzinfo=UTC)


def _interval(value: dt.timedelta) -> pa.MonthDayNano:
    """mysql-replication gives TIME as a timedelta; canonical is an interval (MySQL TIME
    is a signed duration up to 838:59:59, beyond what a time of day holds)."""
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    return pa.MonthDayNano([0, 0, micros * 1000])  # type: ignore[call-arg, arg-type]


def _binary(value: bytes | str) -> bytes:
    """mysql-replication gives an empty byte string as "" (str); it is b"" (a binary value)."""
    if isinstance(value, str):
        assert value == "", value  # only the empty value comes as text
        return b""
    return value


def _binary4(value: bytes | str) -> bytes:
    """The server does not log BINARY(n)'s trailing zero bytes; the stored value has them
    (MySQL pads BINARY with zeros), as the full load reads it."""
    return _binary(value).ljust(4, b"\x00")


# name, definition, normalisation of mysql-replication's value (None: the same form)
COLUMNS: list[tuple[str, str, Callable[[Any], Any] | None]] = [
    ("id", "INT PRIMARY KEY", None),
    ("ti", "TINYINT", None),
    ("tiu", "TINYINT UNSIGNED", None),
    ("si", "SMALLINT", None),
    ("siu", "SMALLINT UNSIGNED", None),
    ("mi", "MEDIUMINT", None),
    ("miu", "MEDIUMINT UNSIGNED", None),
    ("i", "INT", None),
    ("iu", "INT UNSIGNED", None),
    ("bi", "BIGINT", None),
    ("biu", "BIGINT UNSIGNED", _unsigned_bigint),
    ("dec0", "DECIMAL(5,0)", None),
    ("dec1", "DECIMAL(12,4)", None),
    ("dec2", "DECIMAL(38,10)", None),
    ("dec3", "DECIMAL(65,30)", None),
    ("f", "FLOAT", None),
    ("d", "DOUBLE", None),
    ("c", "CHAR(5)", None),
    ("vc", "VARCHAR(20)", None),
    ("t", "TEXT", None),
    ("mt", "MEDIUMTEXT", None),
    ("cl", "CHAR(4) CHARACTER SET latin1", None),
    ("vcl", "VARCHAR(300) CHARACTER SET latin1", None),
    ("tl", "TEXT CHARACTER SET latin1", None),
    ("b", "BINARY(4)", _binary4),
    ("vb", "VARBINARY(10)", _binary),
    ("bl", "BLOB", _binary),
    ("tb", "TINYBLOB", _binary),
    ("lb", "LONGBLOB", _binary),
    ("dt", "DATE", None),
    ("tm", "TIME", _interval),
    ("tm3", "TIME(3)", _interval),
    ("tm6", "TIME(6)", _interval),
    ("dtm", "DATETIME", None),
    ("dtm2", "DATETIME(2)", None),
    ("dtm6", "DATETIME(6)", None),
    ("ts", "TIMESTAMP NULL", _utc),
    ("ts3", "TIMESTAMP(3) NULL", _utc),
    ("ts6", "TIMESTAMP(6) NULL", _utc),
    ("yr", "YEAR", None),
    ("e", "ENUM('sad','ok','happy')", None),
    ("st", "SET('a','b','c','d')", _set),
    ("bit1", "BIT(1)", _bit1),
    ("bit10", "BIT(10)", _bits),
    ("bit63", "BIT(63)", _bits),
    ("js", "JSON", None),
]
NORMALISE = {name: fn for name, _, fn in COLUMNS if fn is not None}
DDL = "CREATE TABLE t ({}) CHARSET utf8mb4".format(", ".join(f"{n} {d}" for n, d, _ in COLUMNS))

HIGH = {
    "ti": 127,
    "tiu": 255,
    "si": 32767,
    "siu": 65535,
    "mi": 8388607,
    "miu": 16777215,
    "i": 2147483647,
    "iu": 4294967295,
    "bi": 9223372036854775807,
    "biu": 18446744073709551615,
    "dec0": Decimal("99999"),
    "dec1": Decimal("99999999.9999"),
    "dec2": Decimal("1234567890123456789012345678.0123456789"),
    "dec3": Decimal("12345678901234567890123456789012345.123456789012345678901234567890"),
    "f": 3.4028234663852886e38,
    "d": 1.7976931348623157e308,
    "c": "abcde",
    "vc": "héllo 𝄞 😀",
    "t": "text\n\\ 'quote\" \t",
    "mt": "m" * 3000,
    "cl": "café",
    "vcl": "€ ÿ œ Š ‰ latin1 " * 10,
    "tl": "Größe ½ ± ©",
    "b": b"\x00\xff\x00\x00",
    "vb": b"\x00\x01\xff",
    "bl": bytes(range(256)),
    "tb": b"\x00",
    "lb": bytes(range(256)) * 300,
    "dt": dt.date(9999, 12, 31),
    "tm": "838:59:59",
    "tm3": "12:34:56.789",
    "tm6": "838:59:58.999999",
    "dtm": dt.datetime(9999, 12, 31, 23, 59, 59),
    "dtm2": dt.datetime(2024, 2, 29, 1, 2, 3, 450000),
    "dtm6": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
    "ts": dt.datetime(2038, 1, 19, 3, 14, 7),
    "ts3": dt.datetime(2038, 1, 19, 3, 14, 7, 999000),
    "ts6": dt.datetime(2038, 1, 19, 3, 14, 7, 999999),
    "yr": 2155,
    "e": "happy",
    "st": "a,c,d",
    "bit1": 1,
    "bit10": 1023,
    "bit63": 2**63 - 1,
    "js": '{"a": [1, 2.5, {"b": null}], "u": "𝄞", "t": true}',
}
LOW = {
    "ti": -128,
    "tiu": 0,
    "si": -32768,
    "siu": 0,
    "mi": -8388608,
    "miu": 0,
    "i": -2147483648,
    "iu": 0,
    "bi": -9223372036854775808,
    "biu": 0,
    "dec0": Decimal("-99999"),
    "dec1": Decimal("-99999999.9999"),
    "dec2": Decimal("-0.0000000001"),
    "dec3": Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
    "f": -1.5,
    "d": 5e-324,
    "c": "",
    "vc": "",
    "t": "",
    "mt": "ünïcödé ✓ 𠜎",
    "cl": "",
    "vcl": "",
    "tl": "",
    "b": b"\x00\x00\x00\x00",
    "vb": b"",
    "bl": b"",
    "tb": b"\xff",
    "lb": b"",
    "dt": dt.date(1000, 1, 1),
    "tm": "-838:59:59",
    "tm3": "00:00:00.001",
    "tm6": "-12:34:56",
    "dtm": dt.datetime(1000, 1, 1, 0, 0, 0),
    "dtm2": dt.datetime(1000, 1, 1, 0, 0, 0, 10000),
    "dtm6": dt.datetime(1970, 1, 1, 0, 0, 0, 1),
    "ts": dt.datetime(1970, 1, 1, 0, 0, 1),
    "ts3": dt.datetime(1970, 1, 1, 0, 0, 1, 1000),
    "ts6": dt.datetime(2000, 2, 29, 12, 0, 0, 500000),
    "yr": 1901,
    "e": "sad",
    "st": "",
    "bit1": 0,
    "bit10": 0,
    "bit63": 0,
    "js": "[]",
}
MIXED = {
    **{k: v for k, v in HIGH.items() if k < "m"},
    **{k: v for k, v in LOW.items() if k >= "m"},
    "dec1": Decimal("0.0000"),
    "dec2": Decimal("1.5"),
    "f": 0.1,
    "d": -0.1,
    "tm6": "00:00:00.000001",
    "st": "b",
    "bit10": 0b1010000001,
    "js": '{"n": -12.5e3, "s": "x\\"y", "e": {}, "l": [[]]}',
}
NULLS = dict.fromkeys(HIGH)

# mysql-replication 1.0 misreads a negative TIME with a fraction (-00:00:00.000001 comes
# out as -00:00:00.999999): in the images of this row, the value written stands in for
# theirs, so ours is checked against it.
NEGATIVE_KEY = 5
NEGATIVE_TIMES = {"tm3": "-838:59:58.999", "tm6": "-00:00:00.000001"}


def _time_text(text: str) -> pa.MonthDayNano:
    """MySQL TIME text as the canonical interval."""
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, fraction = seconds.partition(".")
    micros = ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1_000_000
    micros += int(fraction.ljust(6, "0"))
    sign = -1 if text.startswith("-") else 1
    return pa.MonthDayNano([0, 0, sign * micros * 1000])  # type: ignore[call-arg, arg-type]


def _execute(url: str, *statements: tuple[str, Any]) -> None:
    conn = connect(EndpointURL.parse(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")  # TIMESTAMP literals are UTC
            for sql, args in statements:
                cur.execute(sql, args)
    finally:
        conn.close()


def _insert(key: int, row: dict[str, Any]) -> tuple[str, Any]:
    names = ", ".join(["id", *row])
    marks = ", ".join(["%s"] * (len(row) + 1))
    return f"INSERT INTO t ({names}) VALUES ({marks})", [key, *row.values()]


def _update(key: int, row: dict[str, Any]) -> tuple[str, Any]:
    sets = ", ".join(f"{name} = %s" for name in row)
    return f"UPDATE t SET {sets} WHERE id = %s", [*row.values(), key]


def _position(url: str) -> BinlogPosition:
    pos = MySqlChangeSource(EndpointURL.parse(url), "vs-mysql-replication").current_position()
    assert isinstance(pos, BinlogPosition)
    return pos


def _charsets(url: str) -> dict[int, str]:
    """Collation id -> character set, from the server (as the capture passes them)."""
    conn = connect(EndpointURL.parse(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS")
            out = {int(i): str(n) for i, n in cur.fetchall() if i is not None}
            cur.execute(
                "SELECT ID, CHARACTER_SET_NAME FROM information_schema"
                ".COLLATION_CHARACTER_SET_APPLICABILITY WHERE ID IS NOT NULL"
            )
            out.update({int(i): str(n) for i, n in cur.fetchall()})
        return out
    finally:
        conn.close()


def _ours(url: str, start: BinlogPosition, end: BinlogPosition) -> list[Event]:
    """The row images as BinlogDecoder decodes the raw events from ``start`` to ``end``."""
    endpoint = EndpointURL.parse(url)
    table = (endpoint.database, "t")
    decoder = BinlogDecoder(
        file=start.file,
        offset=start.offset,
        captured={table},
        charsets=_charsets(url),
        old_rows={table},
    )
    client = BinlogClient(endpoint, 4_000_000_111)
    client.connect()
    client.dump(start.file, start.offset)
    decoder.crc = 4 if client.checksum else 0
    out: list[Event] = []
    deadline = time.monotonic() + 30
    try:
        while (decoder.file_number, decoder.offset) < (end.file_number, end.offset):
            assert time.monotonic() < deadline, "the binlog did not reach the end position"
            for event in client.read_events(1.0):
                txn = decoder.feed(event)
                out += [_our_event(c) for c in (txn.changes if txn else ())]
    finally:
        client.close()
    return out


def _our_event(change: Change) -> Event:
    before = dict(zip(change.old_columns, change.old_values, strict=True))
    after = dict(zip(change.columns, change.values, strict=True))
    if change.op is Op.INSERT:
        return "insert", None, after
    if change.op is Op.UPDATE:
        return "update", before, after
    assert change.op is Op.DELETE, change
    return "delete", before, None


def _theirs(url: str, start: BinlogPosition) -> list[Event]:
    """The row images as pymysqlreplication's BinLogStreamReader decodes them."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    parts = urlsplit(url)
    stream = BinLogStreamReader(
        connection_settings={
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 3306,
            "user": parts.username or "root",
            "password": parts.password or "",
        },
        server_id=4_000_000_112,
        log_file=start.file,
        log_pos=start.offset,
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[EndpointURL.parse(url).database],
        only_tables=["t"],
    )
    out: list[Event] = []
    try:
        for event in stream:
            for row in event.rows:
                if isinstance(event, WriteRowsEvent):
                    out.append(("insert", None, _normalised(row, "values")))
                elif isinstance(event, UpdateRowsEvent):
                    before, after = (
                        _normalised(row, "before_values"),
                        _normalised(row, "after_values"),
                    )
                    out.append(("update", before, after))
                else:
                    out.append(("delete", _normalised(row, "values"), None))
    finally:
        stream.close()
    return out


def _normalised(row: dict[str, Any], image: str) -> Image:
    """One image with each value in the canonical form (NULL stays None); in the row of
    NEGATIVE_KEY, the TIME values written stand in for theirs."""
    sources = row.get(image.replace("values", "none_sources"), {})  # why a value is None
    out: Image = {}
    for name, value in row[image].items():
        normalise = NORMALISE.get(name)
        if value is None and sources.get(name) != "empty set":
            out[name] = None
        else:
            out[name] = normalise(value) if normalise else value
    if out["id"] == NEGATIVE_KEY:
        out.update({name: _time_text(text) for name, text in NEGATIVE_TIMES.items()})
    return out


def _cells(events: list[Event]) -> list[tuple[str, Any]]:
    """Every value of every row image, labelled by event, op, image and column."""
    out: list[tuple[str, Any]] = []
    for n, (op, before, after) in enumerate(events):
        for label, image in (("before", before), ("after", after)):
            out += [(f"event {n} ({op}) {label} {k}", v) for k, v in (image or {}).items()]
    return out


def _differences(ours: list[Event], theirs: list[Event]) -> list[str]:
    """Every cell whose value or Python type differs (same events, images and columns)."""
    mine, other = _cells(ours), _cells(theirs)
    assert [label for label, _ in mine] == [label for label, _ in other]
    return [
        f"{label}: ours {a!r}, theirs {b!r}"
        for (label, a), (_, b) in zip(mine, other, strict=True)
        if a != b or type(a) is not type(b)
    ]


@pytest.fixture
def table(mysql_db: str) -> str:
    _execute(mysql_db, (DDL, None))
    return mysql_db


def test_row_images_match_mysql_replication(table: str) -> None:
    start = _position(table)
    _execute(
        table,
        _insert(1, HIGH),
        _insert(2, LOW),
        _insert(3, MIXED),
        _insert(4, NULLS),
        _insert(NEGATIVE_KEY, NEGATIVE_TIMES),
        _update(4, HIGH),  # every value from NULL
        _update(1, NULLS),  # every value to NULL
        _update(2, MIXED),
        ("UPDATE t SET vc = CONCAT(COALESCE(vc, ''), '!'), yr = 2000", None),  # every row
        ("DELETE FROM t WHERE id IN (1, 3)", None),
        ("DELETE FROM t", None),
    )
    end = _position(table)
    ours, theirs = _ours(table, start, end), _theirs(table, start)
    assert [op for op, _b, _a in ours] == ["insert"] * 5 + ["update"] * 8 + ["delete"] * 5
    assert _differences(ours, theirs) == []
