"""The task service: the one task lifecycle the command line (and a server) sits on.

See :class:`TaskService`; :mod:`opendms.service.control` runs tasks as background
processes; the status machine is :mod:`opendms.state.status` (under the engine, which
records a run's statuses through it too).
"""

from opendms.service.tasks import (
    AssessmentFailedError,
    DataErrorRow,
    Deleted,
    Launched,
    RunResult,
    TaskExistsError,
    TaskInfo,
    TaskService,
)

__all__ = [
    "AssessmentFailedError",
    "DataErrorRow",
    "Deleted",
    "Launched",
    "RunResult",
    "TaskExistsError",
    "TaskInfo",
    "TaskService",
]
