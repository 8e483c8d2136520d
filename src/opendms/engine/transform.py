"""Table-mapping rules applied to changes: source filters, add-column expressions and
changed data types, so a CDC target holds what a new full load would give.

Tables without such rules pass through untouched (the fast path). For the others
each change is rewritten into the target's columns (values in canonical Python
form), and an ApplyPlan whose source columns *are* the target outputs:

- insert: kept when the new row passes the filters, with outputs evaluated;
- update: decided from the old row where the source sent it (a MySQL/MariaDB FULL
  row image, SQLite capture, PostgreSQL REPLICA IDENTITY FULL, or a key that holds the
  filter columns): old and new rows pass -> an update; only the new one -> an insert
  (the row moves into the filter); only the old one -> a delete (it moves out);
  neither -> nothing. Where the old row is unknown and the new row passes, the row
  may or may not be in the target: a database target gets delete old key + insert
  new row, a target that records changes (the lake) one update, which its readers
  apply as an upsert. A new row that fails deletes the old key (when not known out);
- delete: applied, with the old row's outputs when the source sent the whole old
  row; a delete of a row known to fail the filters is dropped (it never got there).

An update that left values out (unchanged TOAST) takes them from the old row when
the source sent it; otherwise it is applied as an update of the columns it has,
since its full row is not known.

Expressions see the DMS header columns of the change (:func:`change_headers`): its
operation, the transaction's commit time and end position, a change sequence, and the
transaction id (none from SQLite's change table). A table whose expressions call
``operation_indicator`` keeps deleted rows (DMS): a source delete becomes an update of
the columns computed from ``operation_indicator`` and the header columns.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from opendms.changes import UNCHANGED, ApplyPlan, Change, Op, SeqPosition, Transaction
from opendms.mapping import OutputColumn, TablePlan
from opendms.mapping.expressions import (
    Truncation,
    change_headers,
    compiled,
    evaluate_outputs,
    truncation_reason,
    uses_operation,
)
from opendms.mapping.lobs import limited_value, truncatable
from opendms.mapping.rowfilter import passes
from opendms.model import Column, Table, arrow_type

log = logging.getLogger("opendms.transform")
TableKey = tuple[str, str]
OnTruncation = Callable[[Change, str, str], bool]
"""Called for a change whose expression result was cut to its string(n): (the source
change, the column, the reason); returns whether the change is still applied."""
_OPERATIONS = {Op.INSERT: "INSERT", Op.UPDATE: "UPDATE", Op.DELETE: "DELETE"}


def needs_transform(plan: TablePlan) -> bool:
    """Whether the table's changes are rewritten here (LOB limits alone are not a
    reason: :class:`opendms.engine.lobcut.LobCutter` applies them to changes as sent)."""
    outputs = plan.outputs
    renamed_only = all(o.expression is None and o.source is not None for o in outputs)
    return bool(plan.filters) or not renamed_only or not compiled(plan).copies


def output_plan(plan: TablePlan) -> ApplyPlan:
    """The ApplyPlan of a transformed table: its changes carry target columns."""
    columns = tuple(Column(o.name, o.type) for o in plan.outputs)
    key = tuple(_target_name(plan, k) or k for k in plan.source.primary_key)
    source = Table(plan.source.schema, plan.source.name, columns, key)
    return ApplyPlan(source, plan.target, {o.name: o.name for o in plan.outputs})


def _target_name(plan: TablePlan, column: str) -> str | None:
    for out in plan.outputs:
        if out.source == column:
            return out.name
    return None


class Transformer:
    """Rewrites the changes of transformed tables (values in canonical Python form).

    ``records_changes``: the target records each change (lake files) instead of
    holding rows: an update of an unknown old row is one update, and deletes and
    updates carry the old row's outputs (its ``D`` rows show the whole old row)."""

    def __init__(
        self,
        plans: dict[TableKey, TablePlan],
        records_changes: bool = False,
        on_truncation: OnTruncation | None = None,
    ) -> None:
        self.plans = plans
        self.records_changes = records_changes
        self.on_truncation = on_truncation
        # The change sequence's 19-digit part: microseconds at start x 1000, then +1 per
        # change, so it keeps growing across runs of the task.
        self._sequence = itertools.count(time.time_ns() // 1000 * 1000)
        self.txn: Transaction | None = None
        self.current: tuple[Change, dict[str, Any]] = (Change(Op.INSERT, "", ""), {})

    def __call__(self, txn: Transaction) -> Transaction:
        self.begin(txn)
        return replace(txn, changes=[c for change in txn.changes for c in self.one(change)])

    def begin(self, txn: Transaction) -> None:
        """The transaction whose changes come next (for the header columns)."""
        self.txn = txn

    def headers(self, change: Change) -> dict[str, Any]:
        """The DMS header values of ``change`` in the current transaction."""
        txn = self.txn
        commit = txn.commit_time if txn is not None else datetime.now(UTC)
        position = str(txn.end) if txn is not None else ""
        xid = None
        if txn is not None and txn.xid and not isinstance(txn.end, SeqPosition):
            xid = str(txn.xid)
        op = _OPERATIONS.get(change.op, change.op.name)
        return change_headers(op, commit, position, next(self._sequence), xid)

    def one(self, change: Change) -> list[Change]:
        """The target changes of one source change (none when the filters drop it)."""
        plan = self.plans.get((change.schema, change.table))
        return [change] if plan is None else self._change(plan, change)

    def _change(self, plan: TablePlan, change: Change) -> list[Change]:
        if change.op in (Op.TRUNCATE, Op.DDL):
            return [change]
        headers = self.headers(change)
        try:
            return self._rows(plan, change, headers)
        except _DroppedError:
            return []

    def _rows(self, plan: TablePlan, change: Change, headers: dict[str, Any]) -> list[Change]:
        self.current = (change, headers)
        before = change.before()
        was_in = _passes(plan, before)
        if change.op is Op.DELETE and was_in is not False and _flags_deletes(plan):
            return [self._flagged(plan, change, before)]
        if change.op is Op.INSERT:
            row = dict(zip(change.columns, change.values, strict=True))
            return [self._outputs(plan, change, row)] if _passes(plan, row) is not False else []
        if was_in is False and change.op is Op.DELETE:
            return []  # the filters had left the row out
        gone = self._delete(plan, change, before)
        if change.op is Op.DELETE:
            return [gone]
        row = _filled(dict(zip(change.columns, change.values, strict=True)), before)
        if _passes(plan, row) is False:  # unknown (unchanged TOAST) counts as passing
            return [] if was_in is False else [replace(gone, stat="U")]
        new = self._outputs(plan, change, row, before)
        if was_in is False:  # moved into the filters
            return [replace(new, stat="U")]
        if was_in or self.records_changes or any(v is UNCHANGED for v in row.values()):
            return [replace(gone, op=Op.UPDATE, columns=new.columns, values=new.values)]
        return [replace(gone, stat=""), replace(new, stat="U")]

    def _delete(self, plan: TablePlan, change: Change, before: dict[str, Any]) -> Change:
        """A delete of the old row: its key by target names, and its outputs when the
        source sent the whole row and the target records changes."""
        key_cols = tuple(_target_name(plan, c) or c for c in change.key_columns)
        old = Change(
            Op.DELETE,
            change.schema,
            change.table,
            (),
            (),
            key_cols,
            change.key,
            origin=change.origin,
        )
        whole = all(before.get(c, UNCHANGED) is not UNCHANGED for c in plan.read_columns)
        if not (self.records_changes and whole):
            return old
        image = self._outputs(plan, change, before)
        return replace(old, old_columns=image.columns, old_values=image.values)

    def _flagged(self, plan: TablePlan, change: Change, before: dict[str, Any]) -> Change:
        """A delete kept as DMS's operation_indicator does: the row stays, and its
        operation_indicator and header columns are updated (as computed from the old row
        as far as the source sent it)."""
        key_cols = tuple(_target_name(plan, c) or c for c in change.key_columns)
        image = self._outputs(plan, change, before)
        flagged = set(compiled(plan).operation)
        values = tuple(v if i in flagged else UNCHANGED for i, v in enumerate(image.values))
        return Change(
            Op.UPDATE,
            change.schema,
            change.table,
            image.columns,
            values,
            key_cols,
            change.key,
            origin=change.origin,
        )

    def _outputs(
        self,
        plan: TablePlan,
        change: Change,
        row: dict[str, Any],
        before: dict[str, Any] | None = None,
    ) -> Change:
        """The target row of ``row``; before-image columns (add-before-image-columns)
        get the old row's values where ``before`` (an update's old row) has them."""
        arrays = []
        for name in plan.read_columns:
            value = row.get(name)
            ctype = plan.source.column(name).type
            arrays.append(pa.array([None if value is UNCHANGED else value], arrow_type(ctype)))
        batch = pa.RecordBatch.from_arrays(arrays, names=list(plan.read_columns))
        source, headers = self.current
        cut: list[Truncation] = []
        result = evaluate_outputs(batch, plan, headers, cut).to_pylist()[0]
        for t in cut:
            self._truncated(source, t.column, t.reason)
        values = []
        for out in plan.outputs:
            unchanged = out.source is not None and row.get(out.source) is UNCHANGED
            if out.before is not None:
                old = None if before is None else before.get(out.before)
                old = None if old is UNCHANGED else old
                values.append(self._before(source, out, old, plan.lobs.setting))
            else:
                values.append(UNCHANGED if unchanged else result[out.name])
        columns = tuple(o.name for o in plan.outputs)
        return Change(
            Op.INSERT, change.schema, change.table, columns, tuple(values), origin=change.origin
        )

    def _truncated(self, source: Change, column: str, reason: str) -> None:
        """DataTruncationErrorPolicy for a value of ``source`` cut in ``column``."""
        message = f"column {column}: {reason}"
        if self.on_truncation is not None and not self.on_truncation(source, column, message):
            raise _DroppedError

    def _before(self, source: Change, out: OutputColumn, value: Any, setting: str) -> Any:
        """A before-image value, cut to its LOB limit in limited LOB mode (``setting``:
        where the limit comes from)."""
        limit = out.lob_limit
        if limit is None or value is None:
            return value
        table = f"{source.schema}.{source.table}"
        kept = limited_value(value, limit, truncatable(out.type), out.name, table, setting)
        if kept is not value:
            self._truncated(source, out.name, truncation_reason(limit, lob=True, setting=setting))
        return kept


class _DroppedError(Exception):
    """DataTruncationErrorPolicy dropped the change."""


def _flags_deletes(plan: TablePlan) -> bool:
    """Whether the table's expressions call operation_indicator (deleted rows are kept)."""
    cache: dict[str, Any] = plan._cache
    if "flags_deletes" not in cache:
        cache["flags_deletes"] = any(
            o.expression is not None and uses_operation(o.expression) for o in plan.outputs
        )
    return bool(cache["flags_deletes"])


def _passes(plan: TablePlan, row: dict[str, Any]) -> bool | None:
    """Whether ``row`` passes the filters; None when it lacks a filter column."""
    if any(row.get(g.column, UNCHANGED) is UNCHANGED for g in plan.filters):
        return None
    return passes(plan.filters, row, plan.source)


def _filled(row: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The new row with values the source left out (unchanged TOAST) from the old row."""
    return {c: before.get(c, v) if v is UNCHANGED else v for c, v in row.items()}
