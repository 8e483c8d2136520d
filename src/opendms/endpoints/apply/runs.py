"""Runs, rows and segments: how a batch of changes is cut into statements sent at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import pyarrow as pa

from opendms.changes import UNCHANGED, ApplyPlan, Change, ColumnChange, Op, Transaction
from opendms.errors import DataError
from opendms.mapping import cast_exact
from opendms.model import arrow_type

RUN_LIMIT = 2000  # changes converted at once (bounds memory on huge transactions)
SEGMENT_LIMIT = 500  # statements sent at once


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str | bytes) else str(value)


def row_label(tmap: ApplyPlan, change: Change) -> str:
    """The row a change addresses, for messages (``id=5``; the whole row without a key)."""
    if change.op is Op.INSERT or not change.key_columns:
        values = dict(zip(change.columns, change.values, strict=True))
        pk = tmap.source.primary_key
        cols = list(pk) if pk and all(k in values for k in pk) else list(values)
        pairs = [(c, values[c]) for c in cols]
    else:
        pairs = list(zip(change.key_columns, change.key, strict=True))
    text = ", ".join(f"{c}={_show(v)}" for c, v in pairs if v is not UNCHANGED)
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass
class Run:
    """Consecutive changes of one table with one statement shape."""

    tmap: ApplyPlan
    op: Op
    cols: tuple[str, ...]  # source columns carrying new values (mapped, not UNCHANGED)
    keys: tuple[str, ...]  # source key columns addressing the old row (mapped)
    changes: list[Change] = field(default_factory=list)

    @cached_property
    def tcols(self) -> tuple[str, ...]:
        return tuple(self.tmap.names[c] for c in self.cols)

    @cached_property
    def tkeys(self) -> tuple[str, ...]:
        return tuple(self.tmap.names[c] for c in self.keys)

    @cached_property
    def by_pk(self) -> bool:
        """True when the old row is addressed by the target's primary key."""
        pk = self.tmap.target.primary_key
        return bool(pk) and sorted(self.tkeys) == sorted(pk)

    @cached_property
    def full(self) -> bool:
        """True when every copied column has a new value (a full after-image)."""
        return set(self.cols) >= set(self.tmap.names)

    def takes(self, tmap: ApplyPlan, op: Op, cols: tuple[str, ...], keys: tuple[str, ...]) -> bool:
        same = self.tmap is tmap and self.op is op and self.cols == cols and self.keys == keys
        return same and len(self.changes) < RUN_LIMIT


def shape(tmap: ApplyPlan, change: Change) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names = tmap.names
    cols: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    if change.op in (Op.INSERT, Op.UPDATE):
        pairs = zip(change.columns, change.values, strict=True)
        cols = tuple(c for c, v in pairs if c in names and v is not UNCHANGED)
    if change.op in (Op.UPDATE, Op.DELETE):
        keys = tuple(c for c in change.key_columns if c in names)
    return cols, keys


@dataclass
class Row:
    change: Change
    label: str
    values: list[Any]  # stored forms of run.tcols
    old: list[Any]  # stored forms of run.tkeys


Identify = Callable[[list[Any]], tuple[Any, ...]]


def _identify(names: tuple[str, ...], pk: tuple[str, ...]) -> Identify:
    """A function naming the row that values of ``names`` address (its key, or all of it)."""
    if pk and all(k in names for k in pk):
        at = [names.index(k) for k in pk]
        return lambda values: ("key", *(values[i] for i in at))
    order = sorted(range(len(names)), key=lambda i: names[i])
    return lambda values: ("row", *((names[i], values[i]) for i in order))


def segments(run: Run, rows: list[Row]) -> Iterator[list[Row]]:
    """``rows`` cut so that no row key (old or new) repeats inside a segment."""
    pk = run.tmap.target.primary_key
    old = _identify(run.tkeys, pk) if run.keys else None
    new = _identify(run.tcols, pk) if run.cols else None
    seg: list[Row] = []
    seen: set[tuple[Any, ...]] = set()
    for row in rows:
        ids = [old(row.old)] if old else []
        if new:
            ids.append(new(row.values))
        if seg and (len(seg) >= SEGMENT_LIMIT or any(i in seen for i in ids)):
            yield seg
            seg, seen = [], set()
        seg.append(row)
        seen.update(ids)
    if seg:
        yield seg


def key_moved(run: Run, row: Row) -> bool:
    """True unless the update keeps the target primary key it addresses."""
    if not run.by_pk:
        return True
    old = dict(zip(run.tkeys, row.old, strict=True))
    new = dict(zip(run.tcols, row.values, strict=True))
    return any(k not in new or new[k] != old[k] for k in run.tkeys)


def pieces(batch: list[Transaction]) -> list[tuple[list[Transaction], Transaction | None]]:
    """``batch`` cut after each transaction carrying DDL: (data transactions, DDL txn)."""
    out: list[tuple[list[Transaction], Transaction | None]] = []
    data: list[Transaction] = []
    for txn in batch:
        if any(c.op is Op.DDL for c in txn.changes):
            out.append((data, txn))
            data = []
        else:
            data.append(txn)
    if data or not out:
        out.append((data, None))
    return out


def ddl_first(changes: list[Change]) -> list[Change]:
    """A DDL transaction for a target whose DDL commits at once: its DDL changes first,
    then its row changes with their columns named as the DDL left them (dropped ones
    left out). Retried after a crash between the DDL and the checkpoint, the rows then
    meet the table as the first attempt left it, whatever DDL it got to."""
    later: dict[tuple[str, str], list[ColumnChange]] = {}
    rows: list[Change] = []
    for change in reversed(changes):
        key = (change.schema, change.table)
        if change.op is Op.DDL:
            later[key] = [*change.ddl, *later.get(key, [])]
        else:
            rows.append(_renamed_later(change, later.get(key, [])))
    return [c for c in changes if c.op is Op.DDL] + rows[::-1]


def _renamed_later(change: Change, later: list[ColumnChange]) -> Change:
    if not any(cc.action in ("rename", "drop") for cc in later):
        return change

    def final(column: str) -> str | None:
        name: str | None = column
        for cc in later:
            if name == cc.column and cc.action == "drop":
                name = None
            elif name == cc.column and cc.action == "rename":
                name = cc.new_name
        return name

    def keep(
        cols: tuple[str, ...], vals: tuple[Any, ...]
    ) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        pairs = [(final(c), v) for c, v in zip(cols, vals, strict=True)]
        kept = [(c, v) for c, v in pairs if c is not None]
        return tuple(c for c, _ in kept), tuple(v for _, v in kept)

    columns, values = keep(change.columns, change.values)
    key_columns, key = keep(change.key_columns, change.key)
    return replace(change, columns=columns, values=values, key_columns=key_columns, key=key)


def target_array(
    tmap: ApplyPlan, column: str, values: list[Any], labels: list[str]
) -> pa.Array[Any]:
    """Values of source ``column`` as an Arrow array of its target column's type, converted
    as the full load converts them (an exact cast only when the type changes)."""
    source = tmap.source_type(column)
    name = tmap.names[column]
    target = tmap.target_type(name)
    try:
        array = pa.array(values, arrow_type(source))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        i = _first_bad(values, arrow_type(source))
        message = f"column {column}: value {values[i]!r} is not a {source} ({exc})"
        raise DataError(tmap.label, message, labels[i]) from exc
    if target == source:
        return array
    return cast_exact(
        array, target, arrow_type(target), table=tmap.label, column=name, label=lambda i: labels[i]
    )


def _first_bad(values: Sequence[Any], atype: pa.DataType) -> int:
    for i, value in enumerate(values):
        try:
            pa.array([value], atype)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            return i
    return 0
