"""Running a task in this process with what the engine is handed from outside it."""

from __future__ import annotations

import threading

from opendms.config import TaskSpec
from opendms.engine import task as engine_task
from opendms.engine.fullload import LoadResult
from opendms.engine.progress import Progress
from opendms.state import StateStore
from opendms.validate.hooks import VALIDATION


def run_task(
    spec: TaskSpec,
    store: StateStore,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    follow: bool = False,
    fresh: bool = False,
    file: str = "",
) -> LoadResult:
    """:func:`opendms.engine.task.run_task` with row-level validation
    (:mod:`opendms.validate`) for the task's ValidationSettings."""
    return engine_task.run_task(
        spec, store, progress, stop, follow, fresh, file, validation=VALIDATION
    )
