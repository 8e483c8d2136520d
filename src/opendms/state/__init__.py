"""The state store: tasks, per-table statistics and data errors (SQLite file), the task
status machine (:mod:`opendms.state.status`) and the store Protocol the task lifecycle
depends on (:class:`TaskStore`)."""

from opendms.state.status import IllegalTransitionError, TaskStatus, transition
from opendms.state.store import (
    StateStore,
    TableState,
    TableStats,
    TaskRecord,
    default_path,
)
from opendms.state.taskstore import TaskStore

__all__ = [
    "IllegalTransitionError",
    "StateStore",
    "TableState",
    "TableStats",
    "TaskRecord",
    "TaskStatus",
    "TaskStore",
    "default_path",
    "transition",
]
