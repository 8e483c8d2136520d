"""What a CDC task's source retains for it (replication slot WAL, binlog, change rows),
running or stopped: a stopped task's slot keeps WAL on the source until the task is
resumed or deleted, so ``task status`` and ``assess`` report it and warn above a limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from opendms.changes import Backlog
from opendms.config import load_task_file
from opendms.endpoints import open_change_source
from opendms.endpoints.base import EndpointURL
from opendms.errors import OpenDMSError
from opendms.state.store import TaskRecord

DEFAULT_WARN_MB = 1024  # OPENDMS_BACKLOG_WARN_MB


def warn_bytes() -> int:
    """Backlog above which status and assess warn (``OPENDMS_BACKLOG_WARN_MB``)."""
    text = os.environ.get("OPENDMS_BACKLOG_WARN_MB", "")
    mb = int(text) if text.strip().isdigit() else DEFAULT_WARN_MB
    return mb * 1024 * 1024


@dataclass(frozen=True)
class BacklogReport:
    """A task's backlog, or why it is unknown; ``warning`` when it needs attention."""

    backlog: Backlog | None
    unknown: str = ""
    warning: str = ""

    def text(self) -> str:
        if self.backlog is None:
            return f"unknown ({self.unknown})" if self.unknown else ""
        b = self.backlog
        amount = human_bytes(b.amount) if b.unit == "bytes" else f"{b.amount:,} changes"
        return b.what if b.gone else f"{amount}: {b.what}"

    def to_json(self) -> dict[str, object] | None:
        if self.backlog is None:
            return {"unknown": self.unknown} if self.unknown else None
        b = self.backlog
        return {
            "amount": b.amount,
            "unit": b.unit,
            "what": b.what,
            "gone": b.gone,
            "warning": self.warning or None,
        }


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError


def task_backlog(record: TaskRecord) -> BacklogReport | None:
    """The source backlog of a CDC task (None for full-load tasks)."""
    if record.migration_type == "full-load":
        return None
    if not record.file or not Path(record.file).is_file():
        return BacklogReport(None, "no task file on record to reach the source")
    try:
        spec = load_task_file(record.file)
        capture = open_change_source(
            EndpointURL.parse(spec.source.url), record.name, spec.source.settings
        )
        try:
            backlog = capture.backlog(record.position or None)
        finally:
            capture.close()
    except OpenDMSError as exc:
        return BacklogReport(None, str(exc))
    return BacklogReport(backlog, warning=_warning(record, backlog))


def _warning(record: TaskRecord, backlog: Backlog) -> str:
    if backlog.gone and record.position:
        return f"task {record.name}: {backlog.what}; its changes cannot be read any more"
    if backlog.unit == "bytes" and backlog.amount > warn_bytes():
        verb = "resume it" if record.status.value != "running" else "let it catch up"
        return (
            f"task {record.name}: {backlog.what} is {human_bytes(backlog.amount)}; "
            f"{verb}, or delete the task (opendms task delete {record.name}) to release it"
        )
    return ""
