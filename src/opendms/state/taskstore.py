"""What the task lifecycle needs of a state store (:class:`TaskStore`).

:class:`~opendms.state.store.StateStore` (SQLite) implements it; the task service and
the status machine depend only on this Protocol. The engine's run writes its progress
(table statistics, CDC schema history, validation results) through the full
``StateStore``, opened at the same :attr:`TaskStore.path`.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Protocol

from opendms.state.status import ANY_RUN, AnyRun, TaskStatus
from opendms.state.store import TableStats, TaskRecord


class TaskStore(Protocol):
    """Tasks, their status and statistics, as the task lifecycle reads and writes them."""

    path: Path  # the store's file: the task locks and logs live beside it

    def save_task(self, name: str, source: str, target: str, mtype: str, spec: str) -> bool:
        """Create (status ``creating``; True) or redefine (status kept; False) a task."""
        ...

    def set_file(self, name: str, file: str) -> None: ...

    def set_pid(self, name: str, pid: int | None) -> None: ...

    def set_phase(self, name: str, phase: str) -> None: ...

    def set_status(
        self,
        name: str,
        status: TaskStatus,
        reason: str = "",
        *,
        allowed_from: Collection[TaskStatus] | None = None,
        run: str | AnyRun | None = ANY_RUN,
        stamp: bool = True,
    ) -> bool:
        """Write a task's status, only from ``allowed_from`` and in ``run`` when given;
        True when written. Use :func:`opendms.state.status.transition`, not this."""
        ...

    def task(self, name: str) -> TaskRecord | None: ...

    def tasks(self) -> list[TaskRecord]: ...

    def tables(self, task: str) -> list[TableStats]: ...

    def data_errors(self, task: str) -> list[tuple[str, str, str, str]]: ...

    def reset_tables(self, task: str) -> None: ...

    def delete_task(self, name: str) -> None: ...

    def close(self) -> None: ...
