"""Applying captured changes to SQL targets row by row, exactly once.

:class:`RowApplier` is the engine-neutral core shared by
``opendms.endpoints.sqlite.apply.SqliteApplier`` and
``opendms.endpoints.mysql.apply.MySqlApplier``:

- a batch of whole source transactions is applied in one target transaction together
  with the task's checkpoint row (``opendms_checkpoints``), so after a crash the target
  has either the batch and its position or neither;
- consecutive changes of one table with the same operation and column set form a
  *run*; a run's values are converted column by column exactly as the full load
  converts them (Arrow array of the source type, the same exact cast when the target
  type differs, the target's ``reject`` checks, then the target writer's own value
  conversion), so a change writes what the full load writes for the same value;
- a run is cut into *segments* in which no row key repeats, and each segment is sent
  at once (SQLite: ``executemany``; MySQL: multi-row INSERT or multi-statement
  packets), with one affected-row count (or error) per statement;
- a statement that finds no row, or hits a duplicate key, is handled by the DMS apply
  error policies (``ApplyErrorInsertPolicy`` / ``ApplyErrorUpdatePolicy`` /
  ``ApplyErrorDeletePolicy``); reactions run right after their segment, which is safe
  because no other statement of the segment touches the same row. ``SUSPEND_TABLE``
  rolls the segment back to a savepoint, re-applies the rows before the failing one
  and skips the table from then on.

Errors are reported through ``on_error(table, op, key, message)`` only once the
target transaction committed (a rolled-back batch is retried and reports again).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from opendms.changes import ApplyPlan, Change, Op, Transaction
from opendms.endpoints.apply.policy import ApplyErrorPolicy, OnError, error_policies, log_error
from opendms.endpoints.apply.runs import (
    Row,
    Run,
    ddl_first,
    key_moved,
    pieces,
    row_label,
    segments,
    shape,
    target_array,
)
from opendms.endpoints.apply.session import Result, SqlSession, StatementError, Stmt
from opendms.endpoints.base import EndpointURL, Rejection
from opendms.errors import DataError, TaskError
from opendms.model import Table

log = logging.getLogger("opendms.apply")

TableKey = tuple[str, str]


class _Suspended(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


class Rejecter(Protocol):
    url: EndpointURL

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]: ...


@dataclass
class _Batch:
    """State of one target transaction, adopted by the applier once it commits."""

    idempotent: bool
    maps: dict[TableKey, ApplyPlan]
    suspended: set[str]
    errors: list[tuple[str, Op, str, str]] = field(default_factory=list)


class RowApplier(SqlSession):
    """The engine-neutral part of a DB-API applier; subclasses provide SQL and I/O."""

    def __init__(
        self,
        target: Rejecter,
        task: str,
        plans: list[ApplyPlan],
        policies: Mapping[str, str] | None = None,
        on_error: OnError | None = None,
    ) -> None:
        self.target = target
        self.task = task
        self.maps = {(p.source.schema, p.source.name): p for p in plans}
        self.policies = error_policies(policies)
        self.on_error: OnError = on_error if on_error is not None else log_error
        self.suspended: set[str] = set()  # source tables skipped after SUSPEND_TABLE
        self.ready = False

    def _ready(self) -> None:
        if not self.ready:
            self.ensure_checkpoints()
            self.ready = True

    def write_checkpoint(self, position: str) -> None:
        self._ready()
        self.begin()
        try:
            self.save_checkpoint(position)
            self.commit()
        except BaseException:
            self.rollback()
            raise

    # -- Applier protocol --

    def apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        self._ready()
        if self.transactional_ddl:
            self._unit([c for t in batch for c in t.changes], position, idempotent)
        else:
            parts = pieces(batch)
            for i, (data, ddl) in enumerate(parts):
                last = i == len(parts) - 1
                if data or ddl is None:  # an empty batch still records its position
                    end = position if last and ddl is None else str(data[-1].end)
                    self._unit([c for t in data for c in t.changes], end, idempotent)
                if ddl is not None:
                    self._ddl_unit(ddl, position if last else str(ddl.end), idempotent)
        return sum(len(t.changes) for t in batch)

    def schema_changed(self, plan: ApplyPlan) -> None:
        self.maps[(plan.source.schema, plan.source.name)] = plan

    def table_dropped(self, schema: str, table: str) -> None:
        self.maps.pop((schema, table), None)

    def batch_hint(self) -> tuple[float, int] | None:
        return None

    def must_flush_at(self) -> str | None:
        return None

    # -- units of work --

    def _context(self, idempotent: bool) -> _Batch:
        return _Batch(idempotent, dict(self.maps), set(self.suspended))

    def _adopt(self, ctx: _Batch) -> None:
        self.maps, self.suspended = ctx.maps, ctx.suspended
        for error in ctx.errors:
            self.on_error(*error)

    def _unit(self, changes: list[Change], checkpoint: str, idempotent: bool) -> None:
        """``changes`` and the checkpoint in one target transaction."""
        ctx = self._context(idempotent)
        self.begin()
        try:
            self._changes(ctx, changes)
            self.save_checkpoint(checkpoint)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        self._adopt(ctx)

    def _ddl_unit(self, txn: Transaction, checkpoint: str, idempotent: bool) -> None:
        """A DDL transaction on a target whose DDL commits implicitly: the column
        changes skip what is already done, so a crash before the checkpoint is safe."""
        ctx = self._context(idempotent)
        self._changes(ctx, ddl_first(txn.changes))
        self._adopt(ctx)
        self.write_checkpoint(checkpoint)

    def _changes(self, ctx: _Batch, changes: list[Change]) -> None:
        run: Run | None = None
        for change in changes:
            key = (change.schema, change.table)
            tmap = ctx.maps.get(key)
            if tmap is None or tmap.label in ctx.suspended:
                continue
            if change.op is Op.DDL:
                if run is not None:
                    self._flush(ctx, run)
                    run = None
                ctx.maps[key] = self._alter(tmap, change)
                continue
            cols, keys = shape(tmap, change)
            if run is None or not run.takes(tmap, change.op, cols, keys):
                if run is not None:
                    self._flush(ctx, run)
                run = Run(tmap, change.op, cols, keys)
            run.changes.append(change)
        if run is not None:
            self._flush(ctx, run)

    def _alter(self, tmap: ApplyPlan, change: Change) -> ApplyPlan:
        for cc in change.ddl:
            log.info("table %s: %s column %s", tmap.label, cc.action, cc.column)
            self.alter_column(tmap, cc)
            tmap = tmap.after(cc)
        return tmap

    def _flush(self, ctx: _Batch, run: Run) -> None:
        if run.tmap.label in ctx.suspended:
            return
        if run.op is Op.TRUNCATE:
            stmt = (f"DELETE FROM {self.table_sql(run.tmap.target)}", ())
            self._require(run, ["all rows"], self.execute_each([stmt], checked=False))
            return
        rows = self._rows(run)  # a value the target cannot hold raises DataError: the
        # engine applies the batch again in parts and DataErrorPolicy decides (isolate.py)
        for seg in segments(run, rows):
            if not self._segment(ctx, run, seg):
                return

    # -- values --

    def _rows(self, run: Run) -> list[Row]:
        labels = [row_label(run.tmap, c) for c in run.changes]
        news = [dict(zip(c.columns, c.values, strict=True)) for c in run.changes]
        olds = [dict(zip(c.key_columns, c.key, strict=True)) for c in run.changes]
        values = self._columns(run.tmap, run.cols, news, labels, check=True)
        keys = self._columns(run.tmap, run.keys, olds, labels, check=False)
        return [
            Row(change, labels[i], [col[i] for col in values], [col[i] for col in keys])
            for i, change in enumerate(run.changes)
        ]

    def _columns(
        self,
        tmap: ApplyPlan,
        cols: tuple[str, ...],
        rows: list[dict[str, Any]],
        labels: list[str],
        check: bool,
    ) -> list[list[Any]]:
        """Stored forms of source columns ``cols`` of ``rows``, one list per column."""
        arrays = {tmap.names[c]: target_array(tmap, c, [r[c] for r in rows], labels) for c in cols}
        if check and arrays:
            self._reject(tmap, arrays, labels)
        return [self.stored(arrays[tmap.names[c]], tmap.target_type(tmap.names[c])) for c in cols]

    def _reject(self, tmap: ApplyPlan, arrays: dict[str, pa.Array[Any]], labels: list[str]) -> None:
        """The target's full-load checks (values it cannot hold without altering them)."""
        batch = pa.RecordBatch.from_arrays(list(arrays.values()), names=list(arrays))
        found = self.target.reject(tmap.target, batch)  # checks the columns the batch has
        if found:
            first = min(found, key=lambda r: r.row)
            raise DataError(
                tmap.label,
                f"column {first.column}: {first.reason}",
                labels[first.row],
                column=first.column,
            )

    # -- statements --

    def insert_sql(self, table: Table, cols: tuple[str, ...], upsert: bool) -> str:
        names = ", ".join(self.q(c) for c in cols)
        marks = ", ".join(self.placeholder for _ in cols)
        sql = f"INSERT INTO {self.table_sql(table)} ({names}) VALUES ({marks})"
        return sql + (self.upsert_suffix(table, cols) if upsert else "")

    def _where(self, run: Run) -> tuple[str, str]:
        if not run.tkeys:
            return "1 = 0", ""
        op = " = " if run.by_pk else self.null_safe
        types = [run.tmap.target_type(c) for c in run.tkeys]
        where = " AND ".join(
            f"{self.q(c)}{op}{self.key_sql(t)}" for c, t in zip(run.tkeys, types, strict=True)
        )
        return (where, "") if run.by_pk else self.one_row(self.table_sql(run.tmap.target), where)

    def _key_args(self, run: Run, row: Row) -> tuple[Any, ...]:
        types = [run.tmap.target_type(c) for c in run.tkeys]
        return tuple(self.key_param(v, t) for v, t in zip(row.old, types, strict=True))

    def _update_stmts(self, run: Run, rows: list[Row]) -> list[Stmt]:
        where, suffix = self._where(run)
        sets = ", ".join(f"{self.q(c)} = {self.placeholder}" for c in run.tcols)
        sql = f"UPDATE {self.table_sql(run.tmap.target)} SET {sets} WHERE {where}{suffix}"
        return [(sql, (*row.values, *self._key_args(run, row))) for row in rows]

    def _delete_stmts(self, run: Run, rows: list[Row]) -> list[Stmt]:
        where, suffix = self._where(run)
        sql = f"DELETE FROM {self.table_sql(run.tmap.target)} WHERE {where}{suffix}"
        return [(sql, self._key_args(run, row)) for row in rows]

    # -- segments --

    def _segment(self, ctx: _Batch, run: Run, rows: list[Row]) -> bool:
        """Apply one segment; False when its table got suspended."""
        guarded = not ctx.idempotent and ApplyErrorPolicy.SUSPEND_TABLE in self.policies.values()
        mark = len(ctx.errors)
        if guarded:
            self.savepoint("opendms_segment", "SAVEPOINT")
        try:
            self._apply_rows(ctx, run, rows)
        except _Suspended as stop:
            self.savepoint("opendms_segment", "ROLLBACK TO SAVEPOINT")
            del ctx.errors[mark:]
            if stop.index:
                self._apply_rows(ctx, run, rows[: stop.index])
            self.savepoint("opendms_segment", "RELEASE SAVEPOINT")
            ctx.suspended.add(run.tmap.label)
            message = f"table suspended: {stop.message} (SUSPEND_TABLE)"
            ctx.errors.append((run.tmap.label, run.op, rows[stop.index].label, message))
            return False
        if guarded:
            self.savepoint("opendms_segment", "RELEASE SAVEPOINT")
        return True

    def _apply_rows(self, ctx: _Batch, run: Run, rows: list[Row]) -> None:
        if run.op is Op.INSERT:
            results = self.insert(
                run.tmap.target, run.tcols, [r.values for r in rows], ctx.idempotent
            )
            self._judge(ctx, run, rows, results, "insert", counted=False)
        elif run.op is Op.UPDATE and ctx.idempotent:
            self._idempotent_updates(run, rows)
        elif run.op is Op.UPDATE:
            if run.cols:
                results = self.execute_each(self._update_stmts(run, rows), checked=True)
                self._judge(ctx, run, rows, results, "update", counted=True)
        elif run.op is Op.DELETE:
            counted = (
                not ctx.idempotent and self.policies["delete"] is not ApplyErrorPolicy.IGNORE_RECORD
            )
            results = self.execute_each(self._delete_stmts(run, rows), checked=counted)
            self._judge(ctx, run, rows, results, "delete", counted=counted)

    def _judge(
        self,
        ctx: _Batch,
        run: Run,
        rows: list[Row],
        results: list[Result],
        kind: str,
        counted: bool,
    ) -> None:
        for i, (row, result) in enumerate(zip(rows, results, strict=False)):
            if isinstance(result, StatementError):
                self._failed(ctx, run, i, row, kind, result)
            elif counted and result == 0:
                self._failed(ctx, run, i, row, kind, None)

    def _failed(
        self, ctx: _Batch, run: Run, index: int, row: Row, kind: str, error: StatementError | None
    ) -> None:
        """Apply the error policy to one change (``error`` None: no row matched)."""
        if error is not None and (ctx.idempotent or not error.conflict):
            raise DataError(run.tmap.label, f"{kind} failed: {error.message}", row.label)
        message = error.message if error is not None else "no target row matches the key"
        policy = self.policies[kind]
        if policy is ApplyErrorPolicy.INSERT_RECORD and (kind == "insert" or error is None):
            self._insert_record(run, row)
        elif policy is ApplyErrorPolicy.SUSPEND_TABLE:
            raise _Suspended(index, message)
        elif policy is ApplyErrorPolicy.STOP_TASK:
            raise TaskError(
                f"table {run.tmap.label}: {kind} of row {row.label} failed: {message} "
                f"(Apply{kind.capitalize()}ErrorPolicy STOP_TASK)"
            )
        elif policy is not ApplyErrorPolicy.IGNORE_RECORD:
            ctx.errors.append((run.tmap.label, run.op, row.label, message))

    def _insert_record(self, run: Run, row: Row) -> None:
        """INSERT_RECORD: write the after-image (insert, or update the duplicate)."""
        if not run.cols:
            return
        results = self.insert(run.tmap.target, run.tcols, [row.values], upsert=True)
        self._require(run, [row.label], results)

    def _require(self, run: Run, labels: list[str], results: list[Result]) -> None:
        """Raise for the first refused statement (``labels``: the row of each statement)."""
        for label, result in zip(labels, results, strict=False):
            if isinstance(result, StatementError):
                message = f"{run.op.name.lower()} failed: {result.message}"
                raise DataError(run.tmap.label, message, label)

    def _idempotent_updates(self, run: Run, rows: list[Row]) -> None:
        """Updates that may already be applied: delete the old key row, upsert the after-image
        (a partial after-image updates by key, and is inserted when the row is missing)."""
        table = run.tmap.target
        labels = [r.label for r in rows]
        if not run.full:
            if not run.cols:
                return
            results = self.execute_each(self._update_stmts(run, rows), checked=True)
            self._require(run, labels, results)
            for row, result in zip(rows, results, strict=True):
                if result == 0:
                    self._insert_record(run, row)
            return
        pk = table.primary_key
        if pk and set(pk) <= set(run.tcols) and not any(key_moved(run, r) for r in rows):
            results = self.insert(table, run.tcols, [r.values for r in rows], upsert=True)
            self._require(run, labels, results)
            return
        upsert = self.insert_sql(table, run.tcols, upsert=True)
        stmts: list[Stmt] = []
        owners: list[str] = []
        for row, delete in zip(rows, self._delete_stmts(run, rows), strict=True):
            stmts += [delete, (upsert, tuple(row.values))]
            owners += [row.label, row.label]
        self._require(run, owners, self.execute_each(stmts, checked=False))
