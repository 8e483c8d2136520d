"""The state store: tasks, per-table statistics and data errors (SQLite file)."""

from opendms.state.store import (
    StateStore,
    TableState,
    TableStats,
    TaskRecord,
    TaskStatus,
    default_path,
)

__all__ = ["StateStore", "TableState", "TableStats", "TaskRecord", "TaskStatus", "default_path"]
