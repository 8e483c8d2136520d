"""pgoutput decoding from hand-built protocol messages (no server)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from opendms.changes import LSN, UNCHANGED, Op
from opendms.endpoints.postgres.pgoutput import Decoder


def _s(text: str) -> bytes:
    return text.encode() + b"\0"


def relation(
    oid: int, schema: str, name: str, cols: list[tuple[str, bool]], ident: str = "d"
) -> bytes:
    body = struct.pack("!I", oid) + _s(schema) + _s(name) + ident.encode()
    body += struct.pack("!H", len(cols))
    for col, key in cols:
        body += bytes([1 if key else 0]) + _s(col) + struct.pack("!Ii", 23, -1)
    return b"R" + body


def tuple_data(values: list[object]) -> bytes:
    out = struct.pack("!H", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED:
            out += b"u"
        else:
            raw = str(v).encode()
            out += b"t" + struct.pack("!I", len(raw)) + raw
    return out


def begin(xid: int) -> bytes:
    return b"B" + struct.pack("!QqI", 100, 0, xid)


def commit(end: int, micros: int) -> bytes:
    return b"C" + struct.pack("!BQQq", 0, end - 8, end, micros)


REL = relation(7, "public", "t", [("id", True), ("name", False), ("doc", False)])


def test_insert_update_delete_in_one_transaction() -> None:
    d = Decoder()
    assert d.feed(REL) is None
    assert d.feed(begin(42)) is None
    d.feed(b"I" + struct.pack("!I", 7) + b"N" + tuple_data([1, "a", "big"]))
    d.feed(b"U" + struct.pack("!I", 7) + b"N" + tuple_data([1, "b", UNCHANGED]))
    d.feed(
        b"U"
        + struct.pack("!I", 7)
        + b"K"
        + tuple_data([1, None, None])
        + b"N"
        + tuple_data([2, "b", UNCHANGED])
    )
    d.feed(b"D" + struct.pack("!I", 7) + b"K" + tuple_data([2, None, None]))
    txn = d.feed(commit(0x1_0000_0010, 1_000_000))
    assert txn is not None
    assert (txn.xid, txn.end) == (42, LSN(0x1_0000_0010))
    assert txn.commit_time == datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC)
    ins, upd, key_change, delete = txn.changes
    assert (ins.op, ins.values) == (Op.INSERT, ("1", "a", "big"))
    assert (upd.op, upd.values[2], upd.key_columns, upd.key) == (
        Op.UPDATE,
        UNCHANGED,
        ("id",),
        ("1",),
    )
    assert (key_change.key, key_change.values[0]) == (("1",), "2")
    assert (delete.op, delete.key) == (Op.DELETE, ("2",))


def test_replica_identity_full_uses_the_whole_old_row() -> None:
    d = Decoder()
    d.feed(relation(8, "s", "e", [("a", False), ("b", False)], ident="f"))
    d.feed(begin(1))
    d.feed(b"D" + struct.pack("!I", 8) + b"O" + tuple_data(["x", None]))
    txn = d.feed(commit(64, 0))
    assert txn is not None
    assert (txn.changes[0].key_columns, txn.changes[0].key) == (("a", "b"), ("x", None))


def test_truncate_lists_every_relation() -> None:
    d = Decoder()
    d.feed(REL)
    d.feed(relation(9, "public", "u", [("id", True)]))
    d.feed(begin(2))
    d.feed(b"T" + struct.pack("!IB", 2, 0) + struct.pack("!II", 7, 9))
    txn = d.feed(commit(128, 0))
    assert txn is not None
    assert [(c.op, c.table) for c in txn.changes] == [(Op.TRUNCATE, "t"), (Op.TRUNCATE, "u")]


def test_logical_message_marks_are_collected() -> None:
    d = Decoder()
    body = bytes([0]) + struct.pack("!Q", 5) + _s("opendms") + struct.pack("!I", 3) + b"abc"
    assert d.feed(b"M" + body) is None
    other = bytes([0]) + struct.pack("!Q", 6) + _s("someone") + struct.pack("!I", 1) + b"z"
    d.feed(b"M" + other)
    assert d.markers == [b"abc"]


def test_unknown_messages_are_ignored() -> None:
    d = Decoder()
    assert d.feed(b"Y" + struct.pack("!I", 1) + _s("public") + _s("mood")) is None
    assert d.feed(b"O" + struct.pack("!Q", 1) + _s("origin")) is None
