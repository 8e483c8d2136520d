"""Decoder for PostgreSQL's built-in ``pgoutput`` logical replication protocol (v1).

Turns the payloads of a logical replication stream into :class:`Transaction`
objects. Values stay in PostgreSQL's text form; unchanged TOASTed values become
:data:`opendms.changes.UNCHANGED` so an update never overwrites them. A malformed message
(truncated, of a relation never described, with the wrong number of columns) is a
:class:`~opendms.errors.DecodeError` naming the message.

With ``relation_markers`` each relation message inside a transaction also becomes an
uncounted :data:`Op.DDL` change (``TableChange("columns")``, the column names in
``columns`` and the (type OID, typmod) pairs in ``values``), so the capture can tell
when the columns the stream sends differ from what the target knows. Transactional
logical messages whose prefix starts with ``opendms_`` become uncounted changes too
(``table`` is the prefix, ``values`` the content), in stream order.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opendms.changes import LSN, UNCHANGED, Change, Op, TableChange, Transaction, row_change
from opendms.errors import DecodeError

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_Q = struct.Struct("!Q")
_I = struct.Struct("!I")
_H = struct.Struct("!H")
_INT = struct.Struct("!i")
_BEGIN = struct.Struct("!QqI")
_COMMIT = struct.Struct("!BQQq")


@dataclass(frozen=True)
class Relation:
    """A table as the stream describes it (sent before its first change)."""

    oid: int
    schema: str
    name: str
    replica_identity: str
    columns: tuple[str, ...]
    key_flags: tuple[bool, ...]
    type_oids: tuple[int, ...]
    type_mods: tuple[int, ...] = ()
    key_idx: tuple[int, ...] = ()  # positions of the key columns (set by the decoder)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c for c, k in zip(self.columns, self.key_flags, strict=True) if k)


@dataclass
class Decoder:
    """Stateful decoder: relations persist across transactions."""

    relations: dict[int, Relation] = field(default_factory=dict)
    current: Transaction | None = None
    markers: list[bytes] = field(default_factory=list)  # opendms logical messages seen
    relation_markers: bool = False

    def feed(self, payload: bytes) -> Transaction | None:
        """Decode one message; returns a transaction when its commit arrives."""
        kind = payload[:1]
        handler = _HANDLERS.get(kind)
        if handler is None:
            return None  # origin, type, logical message: nothing to apply
        try:
            return handler(self, memoryview(payload)[1:])
        except (struct.error, IndexError, ValueError, OverflowError) as exc:
            name = _NAMES[kind]
            raise DecodeError(f"pgoutput: malformed {name} message ({exc})") from None

    def _relation_of(self, body: memoryview) -> Relation:
        oid = _I.unpack_from(body)[0]
        rel = self.relations.get(oid)
        if rel is None:
            raise DecodeError(f"pgoutput: a change of relation {oid}, never described")
        return rel

    def _begin(self, body: memoryview) -> None:
        _final, stamp, xid = _BEGIN.unpack_from(body)
        self.current = Transaction(xid, _time(stamp), LSN(0))
        return None

    def _commit(self, body: memoryview) -> Transaction | None:
        _flags, _commit_lsn, end_lsn, stamp = _COMMIT.unpack_from(body)
        done, self.current = self.current, None
        if done is None:
            return None
        done.end = LSN(end_lsn)
        done.commit_time = _time(stamp)
        return done

    def _relation(self, body: memoryview) -> None:
        oid = _I.unpack_from(body)[0]
        schema, pos = _string(body, 4)
        name, pos = _string(body, pos)
        ident = chr(body[pos])
        count = _H.unpack_from(body, pos + 1)[0]
        pos += 3
        names, flags, types, mods = [], [], [], []
        for _ in range(count):
            flags.append(bool(body[pos] & 1))
            col, pos = _string(body, pos + 1)
            names.append(col)
            types.append(_I.unpack_from(body, pos)[0])
            mods.append(_INT.unpack_from(body, pos + 4)[0])
            pos += 8  # type oid + typmod
        key_idx = tuple(i for i, flag in enumerate(flags) if flag)
        rel = Relation(
            oid, schema, name, ident, tuple(names), tuple(flags), tuple(types), tuple(mods), key_idx
        )
        self.relations[oid] = rel
        if self.relation_markers:
            marker = TableChange("columns")
            pairs = tuple(zip(rel.type_oids, rel.type_mods, strict=True))
            self._add(Change(Op.DDL, schema, name, rel.columns, pairs, table_ddl=marker, stat=""))
        return None

    def _message(self, body: memoryview) -> None:
        """A logical decoding message: opendms's own mark positions in the stream; its
        transactional ``opendms_…`` messages go into the transaction."""
        prefix, pos = _string(body, 9)  # flags (1) + LSN (8)
        content, _ = _sized(body, pos)
        if prefix == "opendms":
            self.markers.append(content)
        elif body[0] & 1 and prefix.startswith("opendms_"):
            text = content.decode("utf-8", "replace")
            self._add(Change(Op.INSERT, "", prefix, values=(text,), stat=""))
        return None

    def _add(self, change: Change) -> None:
        if self.current is not None:
            self.current.changes.append(change)

    def _insert(self, body: memoryview) -> None:
        rel = self._relation_of(body)
        values, _ = _tuple(body, 5, rel)
        self._add(row_change(Op.INSERT, rel.schema, rel.name, rel.columns, values))
        return None

    def _update(self, body: memoryview) -> None:
        rel = self._relation_of(body)
        pos, old = 4, None
        if body[pos] in (0x4B, 0x4F):  # 'K' old key, 'O' old row
            old, pos = _tuple(body, pos + 1, rel)
        new, _ = _tuple(body, pos + 1, rel)
        key_cols, key = _key(rel, old, new)
        self._add(row_change(Op.UPDATE, rel.schema, rel.name, rel.columns, new, key_cols, key))
        return None

    def _delete(self, body: memoryview) -> None:
        rel = self._relation_of(body)
        old, _ = _tuple(body, 5, rel)
        key_cols, key = _key(rel, old, old)
        self._add(row_change(Op.DELETE, rel.schema, rel.name, (), (), key_cols, key))
        return None

    def _truncate(self, body: memoryview) -> None:
        count = _I.unpack_from(body)[0]
        for i in range(count):
            rel = self._relation_of(body[5 + 4 * i :])
            self._add(Change(Op.TRUNCATE, rel.schema, rel.name))
        return None


def _key(
    rel: Relation, old: tuple[Any, ...] | None, new: tuple[Any, ...]
) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """Key columns and values identifying the old row.

    With REPLICA IDENTITY FULL the old row is sent whole and every column is
    compared; otherwise the key columns come from the old key (when it changed)
    or from the new row.
    """
    if old is not None and rel.replica_identity == "f":
        cols = tuple(c for c, v in zip(rel.columns, old, strict=True) if v is not UNCHANGED)
        return cols, tuple(v for v in old if v is not UNCHANGED)
    source = old if old is not None else new
    idx = rel.key_idx
    if len(idx) == 1:
        i = idx[0]
        return (rel.columns[i],), (source[i],)
    return tuple(rel.columns[i] for i in idx), tuple(source[i] for i in idx)


def _string(body: memoryview, pos: int) -> tuple[str, int]:
    end = bytes(body[pos:]).index(b"\0") + pos
    return bytes(body[pos:end]).decode(), end + 1


def _tuple(body: memoryview, pos: int, rel: Relation) -> tuple[tuple[Any, ...], int]:
    """A TupleData of ``rel``: (its values, the position after it)."""
    count = _H.unpack_from(body, pos)[0]
    if count != len(rel.columns):
        raise ValueError(f"{count} values for the {len(rel.columns)} columns of {rel.name}")
    pos += 2
    values: list[Any] = []
    unpack = _I.unpack_from
    for _ in range(count):
        kind = body[pos]
        pos += 1
        if kind == 0x74:  # 't' text
            size = unpack(body, pos)[0]
            end = pos + 4 + size
            if end > len(body):
                raise ValueError(f"a value of {size} bytes past the message's end")
            values.append(str(body[pos + 4 : end], "utf-8"))
            pos = end
        elif kind == 0x6E:  # 'n' null
            values.append(None)
        elif kind == 0x75:  # 'u' unchanged TOAST
            values.append(UNCHANGED)
        else:
            raise ValueError(f"unknown value kind {kind:#04x} in {rel.name}")
    return tuple(values), pos


def _sized(body: memoryview, pos: int) -> tuple[bytes, int]:
    """Bytes prefixed by their length (4 bytes) at ``pos``, and the position after them."""
    size = _I.unpack_from(body, pos)[0]
    if pos + 4 + size > len(body):
        raise ValueError(f"a value of {size} bytes past the message's end")
    return bytes(body[pos + 4 : pos + 4 + size]), pos + 4 + size


def _time(stamp: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=stamp)


_NAMES = {b"B": "Begin", b"C": "Commit", b"R": "Relation", b"I": "Insert", b"U": "Update"}
_NAMES |= {b"D": "Delete", b"T": "Truncate", b"M": "Message"}
_HANDLERS: dict[bytes, Callable[[Decoder, memoryview], Transaction | None]] = {
    b"B": Decoder._begin,
    b"C": Decoder._commit,
    b"R": Decoder._relation,
    b"I": Decoder._insert,
    b"U": Decoder._update,
    b"D": Decoder._delete,
    b"T": Decoder._truncate,
    b"M": Decoder._message,
}
