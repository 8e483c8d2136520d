"""Premigration assessment results: one :class:`Check` per thing that can go wrong (the
assessment's own checks and those the engines add, :mod:`opendms.endpoints.engine`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One assessment check: its id, outcome, the objects it concerns and how to fix it."""

    id: str
    status: Status
    message: str
    remediation: str = ""
    objects: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "message": self.message,
            "remediation": self.remediation,
            "objects": list(self.objects),
        }


def passed(check_id: str, message: str, objects: tuple[str, ...] = ()) -> Check:
    return Check(check_id, Status.PASSED, message, "", objects)


def skipped(check_id: str, why: str) -> Check:
    return Check(check_id, Status.SKIPPED, why)


def problem(
    check_id: str,
    failed: bool,
    message: str,
    remediation: str,
    objects: tuple[str, ...] = (),
) -> Check:
    """A failed check (``failed``) or a warning."""
    status = Status.FAILED if failed else Status.WARNING
    return Check(check_id, status, message, remediation, objects)
