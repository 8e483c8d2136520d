"""The outbox's form: a batch's changes in pickled chunks, made into records later.

Handing a batch off must cost the capture thread little, so it does not make change
records: it keeps the changes that make one, in chunks of at most :data:`CHUNK` (one row
each in the state store, see :class:`opendms.handlers.store.HandlerStore`). Each change
has an ordinal, its outbox ``seq`` (consecutive per task, from 1). A dispatcher reads the
chunks back as :class:`Item` values, and the handler process makes each item's
:class:`~opendms.envelope.ChangeRecord` (:func:`item_record`), beside the capture.

A change is known by ``(position, index)``: its transaction's position in a form that
sorts as positions do (:func:`opendms.envelope.sortable_position`) and its place in the
transaction; its record id is ``<position>-<index:010d>``. Changes at or before the
newest one in the outbox are not added again (a batch handed off again after a crash),
where the source's positions sort (PostgreSQL, MySQL/MariaDB, SQLite); a source whose
positions do not (DynamoDB Streams) may hand a batch off twice after a crash, and its
handlers see those records again (delivery is at least once in any case).
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from opendms.changes import Change, Op, Transaction
from opendms.envelope import (
    ChangeRecord,
    commit_text,
    ddl_text,
    ordered_position,
    record_of,
    record_text,
)

CHUNK = 1000
"""Changes per outbox row at the most."""

Where = tuple[str, str, str]
"""(commit time text, position, transaction id) of a transaction."""
Mark = tuple[str, int]
"""(sortable position, index) of a change."""
Group = tuple[Where, str, list[tuple[int, Change]]]
"""A transaction's part of a chunk: where, sortable position, (index, change) pairs."""
Wire = tuple[Any, ...]
"""What goes to the handler process for one record: ``("r", chunk's first seq, offset
in the chunk, key columns)`` (made into a record there, from the chunk it was sent) or
``("j", envelope JSON text)`` (a dead letter replayed)."""


@dataclass(frozen=True)
class Chunk:
    """One outbox row: changes of one or more transactions, in commit order."""

    groups: list[Group]
    records: int
    last: Mark
    commit_time: str
    tables: list[tuple[str, str, int]]

    def body(self) -> bytes:
        return pickle.dumps(self.groups, protocol=pickle.HIGHEST_PROTOCOL)

    def tables_json(self) -> str:
        return json.dumps(self.tables)


def chunks(batch: Sequence[Transaction], mark: Mark | None) -> list[Chunk]:
    """The changes of ``batch`` that make a record and come after ``mark``, in chunks.
    Changes the source could not decode are left out (the error policies decide about
    them), as are DDL changes that only restate a table's columns. Positions whose text
    does not sort (:func:`~opendms.envelope.ordered_position`) are never skipped."""
    out: list[Chunk] = []
    groups: list[Group] = []
    size = 0
    for txn in batch:
        end = str(txn.end)
        ordered = ordered_position(end)
        where_s = ordered or end
        kept = [(i, c) for i, c in enumerate(txn.changes) if _makes_record(c)]
        if mark is not None and mark[0] and ordered is not None and kept:
            kept = _after(kept, where_s, mark)
        where = (commit_text(txn.commit_time), str(txn.end), str(txn.xid))
        while kept:
            part, kept = kept[: CHUNK - size], kept[CHUNK - size :]
            groups.append((where, where_s, part))
            size += len(part)
            if size >= CHUNK:
                out.append(_chunk(groups))
                groups, size = [], 0
    if groups:
        out.append(_chunk(groups))
    return out


def _mark_of(index: int, change: Change, where_s: str) -> Mark:
    """Where a change is: its own position when it has one (SQLite), else its
    transaction's and its index (as :func:`opendms.envelope.place`)."""
    return (f"{change.origin:020d}", 0) if change.origin else (where_s, index)


def _after(kept: list[tuple[int, Change]], where_s: str, mark: Mark) -> list[tuple[int, Change]]:
    """The changes of ``kept`` (one transaction's) that come after ``mark``."""
    if _mark_of(*kept[0], where_s) > mark:
        return kept
    if _mark_of(*kept[-1], where_s) <= mark:
        return []
    return [(i, c) for i, c in kept if _mark_of(i, c, where_s) > mark]


def _makes_record(change: Change) -> bool:
    if change.error:
        return False
    return change.op is not Op.DDL or bool(ddl_text(change))


def _chunk(groups: list[Group]) -> Chunk:
    tables = Counter((c.schema, c.table) for _, _, part in groups for _, c in part)
    records = sum(len(part) for _, _, part in groups)
    (_, end, _), where_s, part = groups[-1]
    last = _mark_of(*part[-1], where_s)
    return Chunk(
        groups,
        records,
        last if ordered_position(end) else ("", 0),
        groups[0][0][0],
        [(s, t, n) for (s, t), n in tables.items()],
    )


Entry = tuple[Change, int, Where, str]
"""A change read back: (change, index, where, sortable position)."""


def entries(body: bytes) -> list[Entry]:
    """The changes of one chunk's ``body``, in order."""
    groups: list[Group] = pickle.loads(body)
    out: list[Entry] = []
    for where, where_s, part in groups:
        for i, c in part:
            if c.origin:  # its own position (as envelope.place)
                own = f"{c.origin:020d}"
                out.append((c, 0, (where[0], str(c.origin), where[2]), own))
            else:
                out.append((c, i, where, where_s))
    return out


class Item(NamedTuple):
    """A record of the outbox on its way to a handler (its envelope not made yet):
    ``seq`` its ordinal, ``first`` the ordinal of its chunk's first change, ``body`` the
    chunk (the handler process decodes a chunk once, and makes the record)."""

    seq: int
    first: int
    body: bytes
    entry: Entry
    key: tuple[str, ...]

    @property
    def record_id(self) -> str:
        return entry_id(self.entry)

    @property
    def schema(self) -> str:
        return self.entry[0].schema

    @property
    def table(self) -> str:
        return self.entry[0].table

    @property
    def commit_time(self) -> str:
        return self.entry[2][0]

    @property
    def chunk(self) -> tuple[int, bytes] | None:
        return self.first, self.body

    def wire(self) -> Wire:
        return ("r", self.first, self.seq - self.first, self.key)

    def text(self) -> str:
        """The record's envelope JSON (a dead letter)."""
        change, index, where, _ = self.entry
        found = record_of(change, index, where, self.key)
        assert found is not None  # the outbox holds only changes that make a record
        return record_text(found)


def entry_id(entry: Entry) -> str:
    """The record id of an entry."""
    return f"{entry[3]}-{entry[1]:010d}"


class Records:
    """The handler process's side: makes the records of wires, keeping the chunks it was
    sent decoded (the newest :data:`KEPT`)."""

    KEPT = 64

    def __init__(self) -> None:
        self.chunks: dict[int, list[Entry]] = {}

    def add(self, bodies: dict[int, bytes]) -> None:
        for first, body in bodies.items():
            self.chunks[first] = entries(body)
        while len(self.chunks) > self.KEPT:
            del self.chunks[min(self.chunks)]

    def missing(self, wires: Sequence[Wire]) -> list[int]:
        """The chunks ``wires`` refer to that this side does not hold."""
        return sorted({w[1] for w in wires if w[0] == "r" and w[1] not in self.chunks})

    def record(self, wire: Wire) -> ChangeRecord:
        """The record of one wire."""
        if wire[0] == "j":
            from opendms.envelope import from_json

            return from_json(json.loads(wire[1]))
        _, first, offset, key = wire
        change, index, where, _ = self.chunks[first][offset]
        found = record_of(change, index, where, key)
        assert found is not None
        return found
