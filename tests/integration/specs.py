"""Task specs for integration tests."""

from __future__ import annotations

from typing import Any

from opendms.config import TaskSpec, task_from_dict


def logging_task(name: str, source: str, target: str, mtype: str = "full-load") -> TaskSpec:
    """A task whose data errors are logged row by row (DataErrorPolicy LOG_ERROR)."""
    settings: dict[str, Any] = {"ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}}
    return task_from_dict(
        {
            "name": name,
            "source": source,
            "target": target,
            "migration_type": mtype,
            "task_settings": settings,
        },
        where="test",
    )
