"""DataErrorPolicy for the rows of a full load the target cannot hold.

A batch's rows are checked against the target (values it would alter or refuse); the
policy decides: ``IGNORE_RECORD`` / ``LOG_ERROR`` drop the rows (``LOG_ERROR`` records
them with their key, column and reason), ``SUSPEND_TABLE`` / ``STOP_TASK`` fail the
table (and stop the task). ``DataErrorEscalationCount`` rows in one table apply
``DataErrorEscalationPolicy``.

Expression results cut to their ``string(n)``, and LOB values cut to their table's limit
in limited LOB mode (``TargetMetadata.LobMaxSize``, or the table's ``lob-settings``
``bulk-max-size``), follow ``DataTruncationErrorPolicy``:
``IGNORE_RECORD`` drops the rows, ``LOG_ERROR`` loads them truncated and records a data
error each, ``SUSPEND_TABLE`` / ``STOP_TASK`` fail the table (and stop the task); the
rows count towards ``DataErrorEscalationCount``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pyarrow as pa

from opendms.arrowutil import infinite_rows
from opendms.config import DataErrorPolicyKind
from opendms.endpoints.base import Rejection
from opendms.errors import DataError
from opendms.mapping import TablePlan
from opendms.mapping.expressions import Truncation
from opendms.model import Kind, Table

if TYPE_CHECKING:
    from opendms.engine.fullload import FullLoad, TableRun

log = logging.getLogger("opendms.fullload")


class RowScreen:
    """The data-error decisions of one full load (state lives in its TableRuns)."""

    def __init__(self, load: FullLoad) -> None:
        self.load = load

    def screen(self, run: TableRun, batch: pa.RecordBatch) -> pa.RecordBatch:
        rejected = _infinities(run.plan.target, batch) + self.load.target.reject(
            run.plan.target, batch
        )
        if not rejected:
            return batch
        return self.reject(run, batch, rejected)

    def reject(
        self, run: TableRun, batch: pa.RecordBatch, rejected: list[Rejection]
    ) -> pa.RecordBatch:
        """Apply DataErrorPolicy to rows that cannot be loaded; returns the rows to keep."""
        policy = self.load.settings.ErrorBehavior.DataErrorPolicy
        rejected.sort(key=lambda r: r.row)
        if policy in (DataErrorPolicyKind.SUSPEND_TABLE, DataErrorPolicyKind.STOP_TASK):
            first = rejected[0]
            key = _row_key(run.plan, batch, first.row)
            raise DataError(
                run.plan.target.qualified, f"column {first.column}: {first.reason}", key
            )
        self.log_rejects(run, batch, rejected)
        bad = {r.row for r in rejected}
        keep = pa.array([i not in bad for i in range(batch.num_rows)])
        return batch.filter(keep)

    def truncated(
        self, run: TableRun, batch: pa.RecordBatch, cuts: list[Truncation]
    ) -> pa.RecordBatch:
        """DataTruncationErrorPolicy for the rows of ``batch`` (target rows) whose
        expression results or LOB values were truncated; returns the rows to load."""
        policy = self.load.settings.ErrorBehavior.DataTruncationErrorPolicy
        found = sorted(
            (Rejection(row, cut.column, cut.reason) for cut in cuts for row in cut.rows),
            key=lambda r: r.row,
        )
        table = run.plan.source.qualified
        if policy in (DataErrorPolicyKind.SUSPEND_TABLE, DataErrorPolicyKind.STOP_TASK):
            first = found[0]
            if policy is DataErrorPolicyKind.STOP_TASK:
                self.load.stop.set()
            raise DataError(
                table,
                f"column {first.column}: {first.reason} (DataTruncationErrorPolicy {policy})",
                _row_key(run.plan, batch, first.row),
            )
        rows = {r.row for r in found}
        with run.lock:
            run.errors += len(rows)
            errors = run.errors
        if policy is DataErrorPolicyKind.LOG_ERROR:
            for rej in found:
                key = _row_key(run.plan, batch, rej.row)
                log.warning("table %s: row %s: %s %s", table, key, rej.column, rej.reason)
                reason = f"{rej.reason} (DataTruncationErrorPolicy LOG_ERROR)"
                self.load.store.data_error(self.load.spec.name, table, key, rej.column, reason)
        self._escalate(run, errors)
        if policy is DataErrorPolicyKind.IGNORE_RECORD:
            return batch.filter(pa.array([i not in rows for i in range(batch.num_rows)]))
        return batch

    def log_rejects(self, run: TableRun, batch: pa.RecordBatch, rejected: list[Rejection]) -> None:
        rows = {r.row for r in rejected}
        with run.lock:
            run.errors += len(rows)
            errors = run.errors
        if self.load.settings.ErrorBehavior.DataErrorPolicy is DataErrorPolicyKind.LOG_ERROR:
            self._record_rejects(run, batch, rejected)
        self._escalate(run, errors)

    def _escalate(self, run: TableRun, errors: int) -> None:
        """DataErrorEscalationCount rows skipped in one table: DataErrorEscalationPolicy
        (SUSPEND_TABLE fails the table, STOP_TASK also stops the task)."""
        behavior = self.load.settings.ErrorBehavior
        limit = behavior.DataErrorEscalationCount
        if not limit or errors < limit:
            return
        if behavior.DataErrorEscalationPolicy == "STOP_TASK":
            self.load.stop.set()
        raise DataError(
            run.plan.source.qualified,
            f"{errors} rows had data errors (DataErrorEscalationCount {limit}, "
            f"DataErrorEscalationPolicy {behavior.DataErrorEscalationPolicy})",
        )

    def _record_rejects(
        self, run: TableRun, batch: pa.RecordBatch, rejected: list[Rejection]
    ) -> None:
        table = run.plan.source.qualified
        for rej in rejected:
            key = _row_key(run.plan, batch, rej.row)
            log.warning("table %s: row %s rejected: %s %s", table, key, rej.column, rej.reason)
            self.load.store.data_error(self.load.spec.name, table, key, rej.column, rej.reason)


def _infinities(table: Table, batch: pa.RecordBatch) -> list[Rejection]:
    kinds = (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ)
    return [
        Rejection(row, col.name, "PostgreSQL infinity cannot be represented on this target")
        for col in table.columns
        if col.type.kind in kinds
        for row in infinite_rows(batch.column(col.name))
    ]


def _row_key(plan: TablePlan, batch: pa.RecordBatch, row: int) -> str:
    """The primary key of ``row`` as text (or its position when there is none)."""
    names = set(batch.schema.names)
    out_names = {o.source: o.name for o in plan.outputs if o.source}
    parts = []
    for col in plan.source.primary_key:
        name = col if col in names else out_names.get(col, "")
        if name in names:
            parts.append(f"{col}={batch.column(name)[row].as_py()!r}")
    return ", ".join(parts) if parts else f"#{row}"
