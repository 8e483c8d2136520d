"""Net changes: fold a batch's changes per primary key before applying them.

Inside one batch, a row updated ten times needs only its last image (merged with
earlier images for columns a later change left UNCHANGED), an insert followed by
updates is one insert, an insert followed by a delete is nothing. Folding is
only done where it cannot change the result:

- the table has a primary key and no other unique index on the target (folding
  reorders rows, which could trip a unique index in the middle);
- the change is keyed by that primary key and does not change it;
- any other change (truncate, key change, a table that does not qualify, an
  impossible sequence) first flushes what is pending for its table, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from opendms.changes import UNCHANGED, Change, Op

TableKey = tuple[str, str]


@dataclass
class _Net:
    first: Change | None = None  # a DELETE that must run before ``last``
    last: Change | None = None


@dataclass
class _Pending:
    rows: dict[tuple[Any, ...], _Net] = field(default_factory=dict)


def _overlay(old: Change, new: Change) -> tuple[Any, ...]:
    pairs = zip(old.values, new.values, strict=True)
    return tuple(n if n is not UNCHANGED else o for o, n in pairs)


_POSITIONS: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[int, ...] | None] = {}


def _positions(columns: tuple[str, ...], key: tuple[str, ...]) -> tuple[int, ...] | None:
    """Where the key columns sit in a row (cached: a stream repeats few shapes)."""
    found = _POSITIONS.get((columns, key), ())
    if found == ():
        found = tuple(columns.index(c) for c in key) if set(key) <= set(columns) else None
        _POSITIONS[(columns, key)] = found
    return found


def _key_of(change: Change, key: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The primary-key values a change addresses (None: not keyed by the primary key)."""
    if change.op is Op.DELETE:
        return change.key if change.key_columns == key else None
    pos = _positions(change.columns, key)
    if pos is None:
        return None
    new = tuple(change.values[i] for i in pos)
    if change.op is Op.INSERT:
        return new
    return change.key if change.key_columns == key and new == change.key else None


def _fold(net: _Net, change: Change) -> bool:
    """Fold ``change`` into ``net``; False when the sequence cannot be folded."""
    last = net.last
    if last is None:
        net.last = change
        return True
    if last.columns and change.columns and last.columns != change.columns:
        return False
    if change.op is Op.UPDATE and last.op in (Op.INSERT, Op.UPDATE):
        net.last = replace(last, values=_overlay(last, change))
        return True
    if change.op is Op.DELETE and last.op is Op.INSERT:
        # inserted in this batch: the row is gone again (or back to its earlier delete)
        net.first, net.last = None, net.first
        return True
    if change.op is Op.DELETE and last.op is Op.UPDATE:
        net.last = change
        return True
    if change.op is Op.INSERT and last.op is Op.DELETE:
        net.first, net.last = last, change
        return True
    return False


def _emit(net: _Net) -> list[Change]:
    return [c for c in (net.first, net.last) if c is not None]


def net_changes(changes: list[Change], keys: dict[TableKey, tuple[str, ...]]) -> list[Change]:
    """``changes`` with per-key folding for the tables in ``keys`` (table -> key columns)."""
    out: list[Change] = []
    pending: dict[TableKey, _Pending] = {}

    def flush(table: TableKey) -> None:
        for net in pending.pop(table, _Pending()).rows.values():
            out.extend(_emit(net))

    for change in changes:
        table = (change.schema, change.table)
        key = keys.get(table)
        row = _key_of(change, key) if key and change.op is not Op.TRUNCATE else None
        if row is None:
            flush(table)
            out.append(change)
            continue
        rows = pending.setdefault(table, _Pending()).rows
        net = rows.setdefault(row, _Net())
        if not _fold(net, change):
            flush(table)
            pending.setdefault(table, _Pending()).rows[row] = _Net(last=change)
    for table in list(pending):
        flush(table)
    return out
