"""Assessment of what the source already retains for a CDC task (a stopped task's
replication slot keeps WAL until the task resumes or is deleted)."""

from __future__ import annotations

from opendms.assess.model import Check, passed, problem
from opendms.config import TaskSpec
from opendms.endpoints import open_change_source
from opendms.endpoints.base import EndpointURL
from opendms.engine.backlog import human_bytes, warn_bytes

CHECK = "cdc-source-backlog"


def backlog_check(spec: TaskSpec) -> Check:
    capture = open_change_source(
        EndpointURL.parse(spec.source.url), spec.name, spec.source.settings
    )
    try:
        backlog = capture.backlog(None)
    finally:
        capture.close()
    if backlog.gone:
        return passed(CHECK, f"nothing retained yet ({backlog.what})")
    if backlog.unit == "bytes" and backlog.amount > warn_bytes():
        return problem(
            CHECK,
            False,
            f"{backlog.what}: {human_bytes(backlog.amount)}",
            f"resume the task to apply it, or delete it (opendms task delete {spec.name}) "
            "to release it",
        )
    amount = human_bytes(backlog.amount) if backlog.unit == "bytes" else f"{backlog.amount:,}"
    return passed(CHECK, f"{backlog.what}: {amount}")
