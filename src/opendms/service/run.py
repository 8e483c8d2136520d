"""Running a task in this process with what the engine is handed from outside it."""

from __future__ import annotations

from dataclasses import replace

from opendms.config import TaskSpec
from opendms.engine import task as engine_task
from opendms.engine.fullload import LoadResult
from opendms.engine.task import RunOptions
from opendms.handlers.runtime import HandlerRuntime
from opendms.state import StateStore
from opendms.validate.hooks import VALIDATION

__all__ = ["RunOptions", "run_task"]


def run_task(spec: TaskSpec, store: StateStore, options: RunOptions | None = None) -> LoadResult:
    """:func:`opendms.engine.task.run_task` with row-level validation
    (:mod:`opendms.validate`) for the task's ValidationSettings and the task's handler
    functions (:mod:`opendms.handlers`), which receive its change records."""
    options = options or RunOptions()
    if not spec.handlers:
        return engine_task.run_task(spec, store, options, VALIDATION)
    with HandlerRuntime(spec, store.path) as handlers:
        return engine_task.run_task(spec, store, replace(options, handoff=handlers), VALIDATION)
