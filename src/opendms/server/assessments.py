"""Premigration assessment runs of the DMS API.

``StartReplicationTaskAssessmentRun`` (and the older ``StartReplicationTaskAssessment``)
run the task's premigration assessment (:func:`opendms.assess.assess`) in a background
thread; each check becomes an individual assessment. A run's record, its checks with
their remediations, is a JSON file in ``<state>/assessments/`` (mode 0600), so runs
survive a server restart; a run that was under way when the server stopped is
recorded as ``error-executing``. Results are kept there: no S3 upload happens, the
``ResultLocationBucket`` a caller names is only recorded."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from opendms.checks import Check, Status

Body = dict[str, Any]
log = logging.getLogger(__name__)

# an individual check's outcome -> the DMS individual assessment status
_INDIVIDUAL = {
    Status.PASSED: "passed",
    Status.WARNING: "warning",
    Status.FAILED: "failed",
    Status.SKIPPED: "skipped",
}
_STATISTICS = ("passed", "failed", "error", "warning", "cancelled", "skipped")
FINAL = ("passed", "failed", "warning", "error-executing", "cancelled")


@dataclass
class Run:
    """One assessment run and, once done, its checks."""

    arn: str
    task_arn: str
    task_identifier: str
    name: str
    status: str = "running"
    created_at: float = 0.0
    bucket: str = ""
    folder: str = ""
    role_arn: str = ""
    failure: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)

    def out(self, latest: bool) -> Body:
        """The DMS ``ReplicationTaskAssessmentRun`` shape."""
        counts = {k: 0 for k in _STATISTICS}
        for check in self.checks:
            counts[check["status"]] += 1
        body: Body = {
            "ReplicationTaskAssessmentRunArn": self.arn,
            "ReplicationTaskArn": self.task_arn,
            "Status": self.status,
            "ReplicationTaskAssessmentRunCreationDate": self.created_at,
            "AssessmentProgress": {
                "IndividualAssessmentCount": len(self.checks),
                "IndividualAssessmentCompletedCount": len(self.checks),
            },
            "ServiceAccessRoleArn": self.role_arn,
            "ResultLocationBucket": self.bucket,
            "ResultLocationFolder": self.folder,
            "AssessmentRunName": self.name,
            "IsLatestTaskAssessmentRun": latest,
            "ResultStatistic": {k.capitalize(): v for k, v in counts.items()},
        }
        if self.failure:
            body["LastFailureMessage"] = self.failure
        return body

    def individual(self) -> list[Body]:
        """The DMS ``ReplicationTaskIndividualAssessment`` shapes of the run's checks."""
        return [
            {
                "ReplicationTaskIndividualAssessmentArn": f"{self.arn}:{c['id']}",
                "ReplicationTaskAssessmentRunArn": self.arn,
                "IndividualAssessmentName": c["id"],
                "Status": c["status"],
                "ReplicationTaskIndividualAssessmentStartDate": self.created_at,
            }
            for c in self.checks
        ]

    def results(self) -> list[Body]:
        """The checks as shown to a user: id, status, message, objects, remediation."""
        return self.checks


def check_record(check: Check) -> dict[str, Any]:
    return {
        "id": check.id,
        "status": _INDIVIDUAL[check.status],
        "message": check.message,
        "objects": list(check.objects),
        "remediation": check.remediation,
    }


def outcome(checks: list[dict[str, Any]]) -> str:
    """The run's status from its checks' (DMS: failed > warning > passed)."""
    statuses = {c["status"] for c in checks}
    if "failed" in statuses:
        return "failed"
    return "warning" if "warning" in statuses else "passed"


class AssessmentRuns:
    """The runs of one server, each a JSON file in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        folder.mkdir(parents=True, exist_ok=True)
        for run in self.runs():
            if run.status == "running":  # the server stopped while it ran
                run.status, run.failure = "error-executing", "the server stopped during the run"
                self._save(run)

    def _file(self, run_arn: str) -> Path:
        return self.folder / (run_arn.rsplit(":", 1)[-1] + ".json")

    def _save(self, run: Run) -> None:
        with self._lock:
            tmp = self._file(run.arn).with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(asdict(run), out)
            tmp.replace(self._file(run.arn))

    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        found = []
        for file in self.folder.glob("*.json"):
            try:
                found.append(Run(**json.loads(file.read_text())))
            except (ValueError, TypeError) as exc:
                log.warning("skipping the unreadable assessment run %s: %s", file.name, exc)
        return sorted(found, key=lambda r: (r.created_at, r.arn))

    def latest_of(self, task_arn: str) -> Run | None:
        mine = [r for r in self.runs() if r.task_arn == task_arn]
        return mine[-1] if mine else None

    def start(self, run: Run, assess: Callable[[], list[Check]]) -> Run:
        """Record ``run`` as running and run ``assess`` in a thread; returns the run as
        started (the thread works on its own copy, so a quick run cannot change it)."""
        run.status, run.created_at = "running", time.time()
        self._save(run)
        started = replace(run, checks=[])
        thread = threading.Thread(
            target=self._execute, args=(run, assess), name=f"assessment {run.name}", daemon=True
        )
        self._threads[run.arn] = thread
        thread.start()
        return started

    def _execute(self, run: Run, assess: Callable[[], list[Check]]) -> None:
        try:
            checks = [check_record(c) for c in assess()]
        except Exception as exc:  # a run's error is its outcome, never the server's
            run.status, run.failure = "error-executing", str(exc).splitlines()[0][:500]
        else:
            run.checks, run.status = checks, outcome(checks)
        current = self._read(run.arn)
        if current is not None and current.status == "running":  # not cancelled or deleted
            self._save(run)

    def _read(self, run_arn: str) -> Run | None:
        try:
            return Run(**json.loads(self._file(run_arn).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def wait(self, run_arn: str, timeout: float) -> None:
        """Wait for a run's thread (tests, shutdown)."""
        thread = self._threads.get(run_arn)
        if thread is not None:
            thread.join(timeout)

    def delete(self, run_arn: str) -> Run | None:
        for run in self.runs():
            if run.arn == run_arn:
                self._file(run_arn).unlink(missing_ok=True)
                return run
        return None

    def cancel(self, run_arn: str) -> Run | None:
        """Mark a running run cancelled (its checks are read-only; the thread's result
        is dropped)."""
        for run in self.runs():
            if run.arn == run_arn:
                if run.status == "running":
                    run.status = "cancelled"
                    self._save(run)
                return run
        return None
