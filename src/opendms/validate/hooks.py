"""Row-level validation as the engine's :class:`~opendms.engine.validation.Validation`:
what the task service hands to a run."""

from __future__ import annotations

from opendms.config import TaskSpec
from opendms.engine.validation import ChangedRowsCheck, Validation, ValidationOutcome
from opendms.mapping import TablePlan
from opendms.state import StateStore
from opendms.validate.changed import ChangedKeys
from opendms.validate.runner import validate_task


class _RowValidation:
    def validate_task(self, spec: TaskSpec, store: StateStore) -> ValidationOutcome:
        return validate_task(spec, store)

    def changed_rows(
        self, spec: TaskSpec, store: StateStore, plans: list[TablePlan]
    ) -> ChangedRowsCheck:
        return ChangedKeys(spec, store, plans)


VALIDATION: Validation = _RowValidation()
