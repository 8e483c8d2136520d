"""Running a task in this process with what the engine is handed from outside it."""

from __future__ import annotations

from opendms.config import TaskSpec
from opendms.engine import task as engine_task
from opendms.engine.fullload import LoadResult
from opendms.engine.task import RunOptions
from opendms.state import StateStore
from opendms.validate.hooks import VALIDATION

__all__ = ["RunOptions", "run_task"]


def run_task(spec: TaskSpec, store: StateStore, options: RunOptions | None = None) -> LoadResult:
    """:func:`opendms.engine.task.run_task` with row-level validation
    (:mod:`opendms.validate`) for the task's ValidationSettings."""
    return engine_task.run_task(spec, store, options or RunOptions(), VALIDATION)
