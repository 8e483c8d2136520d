"""Validation during CDC: the rows that changes touched, compared while the stream is idle.

The CDC loop calls :meth:`ChangedKeys.note` after each applied batch and
:meth:`ChangedKeys.check` when it is idle with nothing pending, i.e. when the target has
applied everything the source committed so far. A key that differs is only recorded
when it still differs at the next idle check (a change committed during the
comparison can make it differ for a moment). Single-column keys on database targets;
lake targets are validated whole by ``opendms validate``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import ExitStack
from typing import Any

from opendms.changes import Op, Transaction
from opendms.config import TaskSpec
from opendms.endpoints import open_source
from opendms.endpoints.base import Source
from opendms.errors import NotComparableError, OpenDMSError
from opendms.mapping import TablePlan
from opendms.model import Filter, FilterGroup
from opendms.state import StateStore
from opendms.state import validation as vstate
from opendms.validate.compare import Comparison, Failure
from opendms.validate.runner import TargetReader, ValidationState, _columns, _key, _target_side
from opendms.validate.sides import database_side

log = logging.getLogger("opendms.validate")
TableKey = tuple[str, str]
MAX_KEYS = 5000  # keys compared per table and check
GROUP = 200  # keys per pushed-down filter


class ChangedKeys:
    """Collects changed keys per table and validates them when asked."""

    def __init__(
        self, spec: TaskSpec, store: StateStore, plans: list[TablePlan], interval: float = 5.0
    ) -> None:
        self.spec, self.store, self.interval = spec, store, interval
        self.plans = {(p.source.schema, p.source.name): p for p in plans if _usable(p)}
        self.pending: dict[TableKey, set[str]] = {k: set() for k in self.plans}
        self.suspect: dict[TableKey, set[str]] = {k: set() for k in self.plans}
        self.checked_at = 0.0
        self.stack = ExitStack()
        self.ends: tuple[Source, Source] | None = None
        self.recorded = 0
        vstate.ensure_tables(store)

    def note(self, batch: Iterable[Transaction]) -> None:
        for txn in batch:
            for change in txn.changes:
                key = (change.schema, change.table)
                if key in self.plans:
                    value = _key_value(self.plans[key], change)
                    if value is not None:
                        self.pending[key].add(value)

    def check(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.checked_at < self.interval:
            return
        self.checked_at = time.monotonic()
        for key, plan in list(self.plans.items()):
            wanted = sorted(self.pending[key] | self.suspect[key])[:MAX_KEYS]
            if wanted:
                self._check(key, plan, wanted)

    def _check(self, key: TableKey, plan: TablePlan, wanted: list[str]) -> None:
        try:
            failures = self._compare(plan, wanted)
        except NotComparableError as exc:
            self._give_up(key, plan, exc)
            return
        except OpenDMSError as exc:
            log.warning("table %s: validating changed rows failed: %s", plan.source.qualified, exc)
            return
        bad = {_failure_key(f): f for f in failures}
        confirmed = [f for k, f in bad.items() if k in self.suspect[key]]
        self.pending[key] -= set(wanted)
        self.suspect[key] = set(bad) - {_failure_key(f) for f in confirmed}
        if confirmed:
            self._record(plan, confirmed)

    def _give_up(self, key: TableKey, plan: TablePlan, exc: NotComparableError) -> None:
        """Stop validating a table whose target cannot be compared; say so once, in the
        log and as its validation state."""
        log.warning("table %s: changed rows not validated: %s", plan.source.qualified, exc)
        for table in (self.plans, self.pending, self.suspect):
            table.pop(key, None)
        src = plan.source
        state = ValidationState.TABLE_ERROR.value
        row = vstate.ValidationStateRow(src.schema, src.name, state, 0, 0, 0, str(exc), "")
        vstate.save_state(self.store, self.spec.name, row)

    def _compare(self, plan: TablePlan, wanted: list[str]) -> list[Failure]:
        source, reader = self._ends()
        pairs = _columns(plan)
        positions = _key(plan, pairs)
        src_col, dst_col = pairs[positions[0]]
        left = database_side(source, plan.source, tuple(s for s, _ in pairs), plan.filters)
        target = TargetReader(reader.url, source=reader)
        right = _target_side(plan, target, tuple(t for _, t in pairs))
        chunks = [wanted[i : i + GROUP] for i in range(0, len(wanted), GROUP)]
        left = left.restricted([_group(src_col, c) for c in chunks])
        right = right.restricted([_group(dst_col, c) for c in chunks])
        return Comparison(plan.source.qualified, left, right, positions, MAX_KEYS).run().failures

    def _ends(self) -> tuple[Source, Source]:
        if self.ends is None:
            spec = self.spec
            source = open_source(spec.source.url, spec.source.settings)
            self.stack.enter_context(_closing(source))
            target = open_source(spec.target.url, spec.target.settings)
            self.stack.enter_context(_closing(target))
            self.ends = (source, target)
        return self.ends

    def _record(self, plan: TablePlan, failures: list[Failure]) -> None:
        self.recorded += len(failures)
        log.warning(
            "table %s: %d changed row(s) differ between source and target",
            plan.source.qualified,
            len(failures),
        )
        rows = [vstate.FailureRow(f.table, f.key, f.type, f.details) for f in failures]
        vstate.add_failures(self.store, self.spec.name, rows)

    def close(self) -> None:
        self.stack.close()


def _usable(plan: TablePlan) -> bool:
    pairs = _columns(plan)
    return len(_key(plan, pairs)) == 1 and len(plan.source.primary_key) == 1


def _key_value(plan: TablePlan, change: Any) -> str | None:
    """The changed row's key (its new key for inserts and updates) as filter text."""
    column = plan.source.primary_key[0]
    if change.op in (Op.INSERT, Op.UPDATE) and column in change.columns:
        value = change.values[change.columns.index(column)]
    elif change.op in (Op.UPDATE, Op.DELETE) and column in change.key_columns:
        value = change.key[change.key_columns.index(column)]
    else:
        return None
    return None if value is None else str(value)


def _group(column: str, values: list[str]) -> tuple[FilterGroup, ...]:
    return (FilterGroup(column, tuple(Filter(column, "eq", (v,)) for v in values)),)


def _failure_key(failure: Failure) -> str:
    """The failure's (single-column) key value in the form ``note`` collects."""
    return str(next(iter(failure.key.values())))


class _closing:  # noqa: N801 - a context manager like contextlib.closing, for Source
    def __init__(self, source: Source) -> None:
        self.source = source

    def __enter__(self) -> Source:
        return self.source

    def __exit__(self, *exc: object) -> None:
        self.source.close()
