"""The binlog decoder's slow path (endpoints/mysql/badrows.py): a rows event with a value
that cannot be decoded gives every good row as its change and each bad row as a change
with ``error`` set, and the stream goes on with the next event."""

from __future__ import annotations

import datetime as dt
import struct
import zlib

from opendms.changes import BinlogPosition, Change, Op
from opendms.endpoints.mysql.binlog import rowcode
from opendms.endpoints.mysql.binlog.decoder import BinlogDecoder
from opendms.endpoints.mysql.binlog.events import ZERO_DATE, Col, Ev
from tests.unit.test_binlog_decode import (
    C,
    date3,
    datetime2,
    event,
    feed_all,
    gtid_event,
    image,
    lenenc,
    rows_body,
    table_events,
    var,
    xid_event,
)

COLS = [
    C("id", Col.LONG, nullable=False),
    C("d", Col.DATE),
    C("e", Col.ENUM, bytes([Col.ENUM, 1]), labels=("x", "y")),
    C("v", Col.VARCHAR, struct.pack("<H", 80), charset=45),
]
ENUM = "enum value index out of range"
TEXT = "text is not valid utf8mb4 (invalid start byte)"


def i4(n: int) -> bytes:
    return struct.pack("<i", n)


def row(n: int, d: bytes | None = None, e: bytes = b"\x01", v: bytes = b"ok") -> bytes:
    return image([i4(n), d or date3(2024, 1, n), e, var(v)])


def day(n: int) -> dt.date:
    return dt.date(2024, 1, n)


def good(n: int) -> Change:
    return Change(Op.INSERT, "db", "t", ("id", "d", "e", "v"), (n, day(n), "x", "ok"))


def bad(values: tuple[object, ...], error: str) -> Change:
    return Change(Op.INSERT, "db", "t", ("id", "d", "e", "v"), values, error=error)


def decode(
    *rows: bytes, cols: list[C] = COLS, kind: int = Ev.WRITE_V1, pk: list[int] | None = None
) -> list[Change]:
    events = table_events(cols, list(rows), kind, pk=pk or [0])
    [txn] = feed_all(BinlogDecoder(file="bin.000001"), events)
    assert txn.end == BinlogPosition(1, 500, "bin.000001")
    return txn.changes


def test_the_compiled_walker_builds_changes_the_fast_way() -> None:
    # Change.__init__ is 2.5x slower: a new field of Change must not turn the fast way off
    assert rowcode._FAST_CHANGES
    assert decode(row(1)) == [good(1)]


def test_good_rows_are_kept_and_each_bad_row_is_an_error_change() -> None:
    changes = decode(
        row(1),
        row(2, d=date3(2024, 0, 10)),
        row(3),
        row(4, e=b"\x07", v=b"\xff\xfe"),
        row(5),
    )
    assert changes == [
        good(1),
        bad((2, "2024-00-10", "x", "ok"), f"column d: {ZERO_DATE}"),
        good(3),
        bad((4, day(4), 7, b"\xff\xfe"), f"column e: {ENUM}; column v: {TEXT}"),
        good(5),
    ]
    assert [c.error_column() for c in changes] == ["", "d", "", "e", ""]


def test_the_stream_goes_on_with_the_next_event_and_transaction() -> None:
    dec_ = BinlogDecoder(file="bin.000001")
    events = table_events(COLS, [row(1), row(2, d=date3(0, 0, 0))], pk=[0])
    events += [
        gtid_event(3, log_pos=600),
        event(Ev.WRITE_V1, rows_body(7, 4, [row(3, e=b"\x09")]), 700),
        event(Ev.WRITE_V1, rows_body(7, 4, [row(4)]), 800),
        xid_event(100, 900),
    ]
    first, second = feed_all(dec_, events)
    assert [c.error_column() for c in first.changes] == ["", "d"]
    assert first.changes[1].values[:2] == (2, "0000-00-00")
    assert first.end == BinlogPosition(1, 500, "bin.000001", "0-1-2")
    assert second.changes == [bad((3, day(3), 9, "ok"), f"column e: {ENUM}"), good(4)]
    assert second.end == BinlogPosition(1, 900, "bin.000001", "0-1-3")
    assert dec_.position == second.end


def test_update_and_delete_error_changes_carry_their_key() -> None:
    cols = [*COLS[:1], C("d", Col.DATETIME2, b"\x00"), *COLS[2:]]
    before = row(1, d=datetime2((2024, 1, 1, 0, 0, 0, 0)))
    after = row(1, d=datetime2((2024, 3, 0, 10, 20, 30, 0)), v=b"\xc3")
    (update,) = decode(before + after, cols=cols, kind=Ev.UPDATE_V1)
    assert (update.op, update.key_columns, update.key) == (Op.UPDATE, ("id",), (1,))
    assert update.values == (1, "2024-03-00 10:20:30", "x", b"\xc3")
    assert update.error == (
        f"column d: {ZERO_DATE}; column v: text is not valid utf8mb4 (unexpected end of data)"
    )
    # only the key of a before image is decoded (as the walker does): bad other values
    # do not matter, a bad key value does
    deleted = row(2, d=date3(2024, 2, 0), e=b"\x05")
    assert decode(deleted, kind=Ev.DELETE_V1) == [
        Change(Op.DELETE, "db", "t", key_columns=("id",), key=(2,))
    ]
    assert decode(deleted, kind=Ev.DELETE_V1, pk=[1]) == [
        Change(
            Op.DELETE,
            "db",
            "t",
            key_columns=("d",),
            key=("2024-02-00",),
            error=f"column d: {ZERO_DATE}",
        )
    ]


def test_whole_old_rows_are_decoded_when_asked_for() -> None:
    dec_ = BinlogDecoder(file="bin.000001", old_rows={("db", "t")})
    events = table_events(COLS, [row(2, e=b"\x05")], Ev.DELETE_V1, pk=[0])
    [txn] = feed_all(dec_, events)
    assert txn.changes == [
        Change(
            Op.DELETE,
            "db",
            "t",
            key_columns=("id",),
            key=(2,),
            error=f"column e: {ENUM}",
            old_columns=("id", "d", "e", "v"),
            old_values=(2, day(2), 5, "ok"),
        )
    ]


def test_compressed_rows_event() -> None:
    rows = row(1) + row(2, d=date3(2024, 2, 0))
    payload = bytes([0x80 | 1, len(rows)]) + zlib.compress(rows)
    body = (7).to_bytes(6, "little") + b"\x01\x00" + lenenc(4) + b"\x0f" + payload
    events = table_events(COLS, [], pk=[0])
    events[2] = event(Ev.WRITE_COMPRESSED_V1, body, 400)
    [txn] = feed_all(BinlogDecoder(file="bin.000001"), events)
    assert txn.changes == [good(1), bad((2, "2024-02-00", "x", "ok"), f"column d: {ZERO_DATE}")]


def test_rows_that_cannot_be_told_apart_are_one_error_change() -> None:
    truncated = b"\x00" + i4(3) + date3(2024, 1, 3) + b"\x01" + b"\x50ab"  # v: 80 bytes?
    changes = decode(row(1), row(2, e=b"\x04"), truncated)
    assert changes[:2] == [good(1), bad((2, day(2), 4, "ok"), f"column e: {ENUM}")]
    assert changes[2] == Change(
        Op.INSERT,
        "db",
        "t",
        error="column v: its value runs past the end of the event "
        "(row #3 and the rows after it in the event cannot be decoded)",
    )
    assert changes[2].error_column() == "v"


def test_a_table_map_unknown_type_makes_the_event_one_error_change() -> None:
    cols = [C("id", Col.LONG, nullable=False), C("old", Col.DECIMAL, b"\x05\x02")]
    events = table_events(cols, [image([i4(1), b"\x00"])], pk=[0])
    [txn] = feed_all(BinlogDecoder(file="bin.000001"), events)
    (change,) = txn.changes
    assert change.error == (
        "column old: binlog column type 0 is not supported "
        "(row #1 and the rows after it in the event cannot be decoded)"
    )
