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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from opendms.arrowutil import infinite_rows
from opendms.config import DataErrorPolicyKind
from opendms.endpoints.base import Rejection
from opendms.errors import DataError
from opendms.mapping import TablePlan
from opendms.mapping.expressions import Truncation
from opendms.model import Kind, Table
from opendms.tasksettings import ErrorBehaviorSection

if TYPE_CHECKING:
    from opendms.engine.unitcopy import UnitCopy

log = logging.getLogger("opendms.fullload")


@dataclass(frozen=True)
class DataErrorRow:
    """A row a data-error policy records (LOG_ERROR): its table, key, column, reason."""

    table: str
    key: str
    column: str
    reason: str


class RowScreen:
    """The data-error decisions of one unit; its table's count of rows with data errors
    comes back from the unit's report."""

    def __init__(self, unit: UnitCopy) -> None:
        self.unit = unit
        self.plan = unit.plan
        self.behavior = unit.behavior

    def screen(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        table = self.plan.target
        rejected = _infinities(table, batch) + self.unit.target.reject(table, batch)
        if not rejected:
            return batch
        return self.reject(batch, rejected)

    def reject(self, batch: pa.RecordBatch, rejected: list[Rejection]) -> pa.RecordBatch:
        """Apply DataErrorPolicy to rows that cannot be loaded; returns the rows to keep."""
        policy = self.behavior.DataErrorPolicy
        rejected.sort(key=lambda r: r.row)
        if policy in (DataErrorPolicyKind.SUSPEND_TABLE, DataErrorPolicyKind.STOP_TASK):
            first = rejected[0]
            key = _row_key(self.plan, batch, first.row)
            raise DataError(
                self.plan.target.qualified, f"column {first.column}: {first.reason}", key
            )
        self.log_rejects(batch, rejected)
        bad = {r.row for r in rejected}
        keep = pa.array([i not in bad for i in range(batch.num_rows)])
        return batch.filter(keep)

    def truncated(self, batch: pa.RecordBatch, cuts: list[Truncation]) -> pa.RecordBatch:
        """DataTruncationErrorPolicy for the rows of ``batch`` (target rows) whose
        expression results or LOB values were truncated; returns the rows to load."""
        policy = self.behavior.DataTruncationErrorPolicy
        found = sorted(
            (Rejection(row, cut.column, cut.reason) for cut in cuts for row in cut.rows),
            key=lambda r: r.row,
        )
        if policy in (DataErrorPolicyKind.SUSPEND_TABLE, DataErrorPolicyKind.STOP_TASK):
            self._refuse_truncation(batch, found[0], policy)
        rows = {r.row for r in found}
        logged = []
        if policy is DataErrorPolicyKind.LOG_ERROR:
            logged = self._logged(batch, found, "", " (DataTruncationErrorPolicy LOG_ERROR)")
        self._escalate(self.unit.data_errors(len(rows), logged))
        if policy is DataErrorPolicyKind.IGNORE_RECORD:
            return batch.filter(pa.array([i not in rows for i in range(batch.num_rows)]))
        return batch

    def _refuse_truncation(
        self, batch: pa.RecordBatch, first: Rejection, policy: DataErrorPolicyKind
    ) -> None:
        if policy is DataErrorPolicyKind.STOP_TASK:
            self.unit.stop_task()
        raise DataError(
            self.plan.source.qualified,
            f"column {first.column}: {first.reason} (DataTruncationErrorPolicy {policy})",
            _row_key(self.plan, batch, first.row),
        )

    def log_rejects(self, batch: pa.RecordBatch, rejected: list[Rejection]) -> None:
        rows = {r.row for r in rejected}
        logged = []
        if self.behavior.DataErrorPolicy is DataErrorPolicyKind.LOG_ERROR:
            logged = self._logged(batch, rejected, " rejected", "")
        self._escalate(self.unit.data_errors(len(rows), logged))

    def _escalate(self, errors: int) -> None:
        """DataErrorEscalationCount rows skipped in one table: DataErrorEscalationPolicy
        (SUSPEND_TABLE fails the table, STOP_TASK also stops the task)."""
        exc = escalation(self.plan, errors, self.behavior)
        if exc is None:
            return
        if self.behavior.DataErrorEscalationPolicy == "STOP_TASK":
            self.unit.stop_task()
        raise exc

    def _logged(
        self, batch: pa.RecordBatch, found: list[Rejection], verb: str, why: str
    ) -> list[DataErrorRow]:
        """The rows LOG_ERROR records, each logged here."""
        table = self.plan.source.qualified
        out = []
        for rej in found:
            key = _row_key(self.plan, batch, rej.row)
            log.warning("table %s: row %s%s: %s %s", table, key, verb, rej.column, rej.reason)
            out.append(DataErrorRow(table, key, rej.column, rej.reason + why))
        return out


def escalation(plan: TablePlan, errors: int, behavior: ErrorBehaviorSection) -> DataError | None:
    """The error that fails a table once ``errors`` of its rows had data errors
    (DataErrorEscalationCount), else None."""
    limit = behavior.DataErrorEscalationCount
    if not limit or errors < limit:
        return None
    return DataError(
        plan.source.qualified,
        f"{errors} rows had data errors (DataErrorEscalationCount {limit}, "
        f"DataErrorEscalationPolicy {behavior.DataErrorEscalationPolicy})",
    )


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
