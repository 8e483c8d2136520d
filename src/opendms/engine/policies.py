"""DMS ``ErrorBehavior`` during CDC: what one bad record or one failing table does.

One place decides, for every source and target:

- a **data error** (a value the target cannot hold, a conversion or transformation that
  fails, a row the source cannot decode) is handled by ``DataErrorPolicy``:
  ``IGNORE_RECORD`` skips the change, ``LOG_ERROR`` skips it and records it (table, key,
  column, value, reason) in the task's data errors, ``SUSPEND_TABLE`` records it and stops
  applying that table's changes (the other tables go on), ``STOP_TASK`` stops the task
  with the reason. Every data error counts towards ``DataErrorEscalationCount`` (per
  table; 0 = never escalate), at which ``DataErrorEscalationPolicy`` applies;
- a **truncated value** (an add-column expression result longer than its string(n)) is
  handled by ``DataTruncationErrorPolicy``: ``IGNORE_RECORD`` skips the change (the
  Guide: "the data for that record is ignored"), ``LOG_ERROR`` applies it with the value
  truncated and records a data error, ``SUSPEND_TABLE`` and ``STOP_TASK`` as above; each
  counts towards ``DataErrorEscalationCount``;
- a **table error** (the target table or a column is missing, a statement on it is
  refused: not about one record) is handled by ``TableErrorPolicy`` (``SUSPEND_TABLE``
  or ``STOP_TASK``), escalated to ``STOP_TASK`` after ``TableErrorEscalationCount``;
- apply conflicts (a duplicate insert, an update or delete of a missing row) are handled
  by the appliers with ``ApplyError*Policy``; a ``SUSPEND_TABLE`` there suspends the table
  here too.

A suspended table shows ``Table error`` with a reason starting ``suspended:`` and stays
suspended when the task resumes, until the task is reloaded (as in DMS).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from opendms.changes import Change, Op
from opendms.config import ErrorBehaviorSection
from opendms.errors import OpenDMSError, TableError, TaskError
from opendms.state import StateStore, TableState

log = logging.getLogger("opendms.policies")
TableKey = tuple[str, str]
SUSPENDED = "suspended: "
VALUE_LIMIT = 2000  # characters of a row kept with its data error


def row_text(columns: tuple[str, ...], values: tuple[Any, ...]) -> str:
    """``col=value, ...`` of a row (values shortened), for keys and recorded values."""
    parts = []
    for column, value in zip(columns, values, strict=True):
        text = "NULL" if value is None else repr(value) if not isinstance(value, str) else value
        parts.append(f"{column}={text[:200]}")
    return ", ".join(parts)


def change_key(change: Change, primary_key: tuple[str, ...] = ()) -> str:
    """The row a change is about: its old key, else the new row's primary key (all its
    values when the table has none)."""
    if change.key_columns:
        return row_text(change.key_columns, change.key)
    if primary_key and set(primary_key) <= set(change.columns):
        row = dict(zip(change.columns, change.values, strict=True))
        return row_text(primary_key, tuple(row[k] for k in primary_key))
    return row_text(change.columns, change.values)


def _key(change: Change) -> TableKey:
    return (change.schema, change.table)


class ErrorPolicies:
    """The task's error policies and the tables they suspended."""

    def __init__(self, task: str, settings: ErrorBehaviorSection, store: StateStore) -> None:
        self.task, self.settings, self.store = task, settings, store
        self.suspended: dict[TableKey, str] = {}
        self.data_counts: Counter[TableKey] = Counter()
        self.table_counts: Counter[TableKey] = Counter()
        self.keys: dict[TableKey, tuple[str, ...]] = {}  # source primary keys

    def resume(self) -> None:
        """Tables suspended by an earlier run of the task stay suspended."""
        for t in self.store.tables(self.task):
            if t.state is TableState.ERROR and t.error.startswith(SUSPENDED):
                self.suspended[(t.schema, t.name)] = t.error[len(SUSPENDED) :]

    def is_suspended(self, schema: str, table: str) -> bool:
        return (schema, table) in self.suspended

    def keep(self, change: Change) -> bool:
        """False for a change of a suspended table (it is not applied)."""
        return (change.schema, change.table) not in self.suspended

    # -- data errors ---------------------------------------------------------------------

    def data_error(self, change: Change, exc: OpenDMSError, column: str = "") -> None:
        """A change that cannot be applied because of its data; raises TaskError when the
        policy (or its escalation) stops the task."""
        policy = self.settings.DataErrorPolicy.value
        reason = f"{change.op.name.lower()}: {exc}"
        row = change_key(change, self.keys.get((change.schema, change.table), ()))
        self._decide(change, column, policy, reason, f"change skipped ({policy}): {reason}")
        if policy == "STOP_TASK":
            self._stop(_key(change), f"DataErrorPolicy STOP_TASK: {reason} (row {row})")
        self._after(change, policy, reason)

    def truncated(self, change: Change, column: str, reason: str) -> bool:
        """An expression result of ``change`` was truncated: DataTruncationErrorPolicy.
        Returns whether the change is applied (with the truncated value); raises
        TaskError when the policy (or its escalation) stops the task."""
        policy = self.settings.DataTruncationErrorPolicy.value
        reason = f"{change.op.name.lower()}: {reason} (DataTruncationErrorPolicy {policy})"
        row = change_key(change, self.keys.get((change.schema, change.table), ()))
        self._decide(change, column, policy, reason, reason)
        if policy == "STOP_TASK":
            self._stop(_key(change), f"{reason} (row {row})")
        self._after(change, policy, reason)
        return policy == "LOG_ERROR" and _key(change) not in self.suspended

    def _decide(self, change: Change, column: str, policy: str, reason: str, log_text: str) -> None:
        """Count a data error of ``change`` and record it unless IGNORE_RECORD."""
        key = _key(change)
        self.data_counts[key] += 1
        self.store.count_errors(self.task, *key)
        if policy != "IGNORE_RECORD":
            table = f"{change.schema}.{change.table}"
            value = row_text(change.columns, change.values)[:VALUE_LIMIT]
            row = change_key(change, self.keys.get(key, ()))
            self.store.data_error(self.task, table, row, column, reason, value)
            log.warning("table %s: %s", table, log_text)

    def _after(self, change: Change, policy: str, reason: str) -> None:
        """SUSPEND_TABLE, then DataErrorEscalationCount / DataErrorEscalationPolicy."""
        key = _key(change)
        if policy == "SUSPEND_TABLE":
            self.suspend(key, reason)
        limit = self.settings.DataErrorEscalationCount
        if limit and self.data_counts[key] >= limit and key not in self.suspended:
            why = f"{self.data_counts[key]} data errors (DataErrorEscalationCount {limit})"
            self._escalate(key, self.settings.DataErrorEscalationPolicy, why)

    # -- table errors --------------------------------------------------------------------

    def table_error(self, schema: str, table: str, exc: OpenDMSError) -> None:
        """A table whose data or metadata cannot be processed: TableErrorPolicy."""
        key = (schema, table)
        self.table_counts[key] += 1
        reason = str(exc.message if isinstance(exc, TableError) else exc)
        limit = self.settings.TableErrorEscalationCount
        if limit and self.table_counts[key] >= limit:
            escalation = self.settings.TableErrorEscalationPolicy  # DMS: STOP_TASK only
            self._escalate(key, escalation, f"TableErrorEscalationCount {limit} reached: {reason}")
        self._escalate(key, self.settings.TableErrorPolicy, reason)

    def apply_conflict_suspended(self, table: str, reason: str) -> None:
        """An applier suspended ``schema.table`` (ApplyError*Policy SUSPEND_TABLE)."""
        schema, _, name = table.rpartition(".")
        self.suspend((schema, name), reason)

    def stops_at_once(self, exc: OpenDMSError) -> bool:
        """True when the error's policy stops the task whatever the change is."""
        if isinstance(exc, TableError):
            return self.settings.TableErrorPolicy == "STOP_TASK"
        return self.settings.DataErrorPolicy.value == "STOP_TASK"

    def stop_on(self, changes: list[Change], exc: OpenDMSError) -> None:
        """Stop the task at a transaction that failed (its changes: to name the table)."""
        table = getattr(exc, "table", "") or ""
        keys = {f"{c.schema}.{c.table}": (c.schema, c.table) for c in changes}
        key = keys.get(table) or (next(iter(keys.values())) if keys else ("", table))
        kind = "TableErrorPolicy" if isinstance(exc, TableError) else "DataErrorPolicy"
        count = self.store.count_errors if not isinstance(exc, TableError) else None
        if count is not None and key[0]:
            count(self.task, *key)
        self._stop(key, f"{exc} ({kind} STOP_TASK)")

    # -- outcomes ------------------------------------------------------------------------

    def suspend(self, key: TableKey, reason: str) -> None:
        if key in self.suspended:
            return
        self.suspended[key] = reason
        self.store.table_ended(self.task, *key, TableState.ERROR, SUSPENDED + reason)
        log.error("table %s.%s suspended: %s; the other tables go on", *key, reason)

    def _escalate(self, key: TableKey, policy: str, reason: str) -> None:
        if policy == "STOP_TASK":
            self._stop(key, reason)
        self.suspend(key, reason)

    def _stop(self, key: TableKey, reason: str) -> None:
        self.store.table_ended(self.task, *key, TableState.ERROR, reason)
        raise TaskError(f"table {key[0]}.{key[1]}: {reason}")


def is_row_change(change: Change) -> bool:
    return change.op in (Op.INSERT, Op.UPDATE, Op.DELETE)
