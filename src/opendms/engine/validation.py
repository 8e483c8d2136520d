"""What the engine asks of row-level validation, which it is given by its caller.

Validation (``opendms.validate``) builds on the engine (it plans tables and reads both
sides as a full load does), so the engine cannot import it: the task service hands a
:class:`Validation` to :func:`opendms.engine.task.run_task`, which calls it after a full
load, for ``ValidationOnly`` and, through :meth:`Validation.changed_rows`, on the rows CDC
changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from opendms.changes import Transaction
from opendms.config import TaskSpec
from opendms.mapping import TablePlan
from opendms.state import StateStore


class ValidationOutcome(Protocol):
    """A task's validation result, as much of it as a run reports."""

    @property
    def ok(self) -> bool: ...

    @property
    def failures(self) -> Sequence[object]: ...

    @property
    def not_validated(self) -> Sequence[object]: ...


class ChangedRowsCheck(Protocol):
    """Validates the rows CDC changes: told each applied batch, checks when idle."""

    def note(self, batch: Iterable[Transaction]) -> None: ...

    def check(self, force: bool = False) -> None: ...

    def close(self) -> None: ...


class Validation(Protocol):
    """Row-level validation as a run uses it."""

    def validate_task(self, spec: TaskSpec, store: StateStore) -> ValidationOutcome:
        """Compare the task's source and target; results in the store."""
        ...

    def changed_rows(
        self, spec: TaskSpec, store: StateStore, plans: list[TablePlan]
    ) -> ChangedRowsCheck:
        """A check of the rows CDC changes in ``plans``' tables."""
        ...
