"""The task service (opendms.service.TaskService) on SQLite endpoints: create, run,
status, tables, errors and delete as values and errors (no output), the assessment
before a run, a delete that fails put back as it was, a run whose process vanished
reconciled, and the service on another TaskStore than SQLite (it depends on the
Protocol only)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
from collections.abc import Collection
from pathlib import Path

import pytest
import yaml

from opendms.config import TaskSpec
from opendms.errors import ConfigError, OpenDMSError, TaskError, TaskLockedError
from opendms.service import AssessmentFailedError, Deleted, TaskExistsError, TaskService
from opendms.state import StateStore, TableStats, TaskRecord, TaskStatus, TaskStore, transition
from opendms.state.lock import TaskLock
from opendms.state.status import ANY_RUN, GONE, AnyRun

S = TaskStatus


def _task(tmp_path: Path, migration_type: str = "full-load", source: Path | None = None) -> Path:
    src = source or tmp_path / "src.db"
    if not src.exists() and source is None:
        with sqlite3.connect(src) as conn:
            conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany("INSERT INTO items VALUES (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
        conn.close()
    file = tmp_path / "task.yaml"
    spec = {
        "name": "t",
        "source": f"sqlite:///{src}",
        "target": f"sqlite:///{tmp_path / 'dst.db'}",
        "migration_type": migration_type,
    }
    file.write_text(yaml.safe_dump(spec))
    return file


def test_create_run_read_and_delete(tmp_path: Path) -> None:
    service = TaskService(tmp_path / "state.db")
    file = _task(tmp_path)
    spec = service.load(file)
    created = service.create(spec, file=file)
    assert (created.status, created.file, created.started_at) == (S.READY, str(file), None)
    with pytest.raises(TaskExistsError, match="a task named 't' exists"):
        service.create(spec)
    assert service.create(spec, replace=True).status is S.READY

    result = service.run(spec, file=file, assess=False)
    assert (result.record.status, result.record.stop_reason) == (
        S.STOPPED,
        "FULL_LOAD_ONLY_FINISHED",
    )
    assert (result.load.tables, result.load.rows) == (1, 3)
    assert [(t.name, t.full_load_rows) for t in result.tables] == [("items", 3)]

    info = service.status("t", backlog=False)
    assert info.record == result.record and info.tables == result.tables and info.backlog is None
    assert [i.record.name for i in service.statuses(backlog=False)] == ["t"]
    assert service.tables("t") == result.tables
    assert service.errors("t") == [] and service.errors("t", table="main.items") == []
    with pytest.raises(ConfigError, match=r"task 't' has no table 'main\.nope'"):
        service.errors("t", table="main.nope")
    with pytest.raises(OpenDMSError, match=r"not running \(status stopped: FULL_LOAD_ONLY"):
        service.stop("t", timeout=5)

    assert service.delete("t") == Deleted("t")
    with pytest.raises(ConfigError, match="no task named 't'"):
        service.status("t")
    service.close()


def test_a_failed_assessment_stops_a_run_before_anything_is_recorded(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    service = TaskService(state)
    spec = service.load(_task(tmp_path, source=tmp_path / "missing.db"))
    with pytest.raises(AssessmentFailedError) as failed:
        service.run(spec)
    assert str(failed.value) == (
        "task t: 1 assessment check(s) failed (source-connection); "
        "fix them or run with --skip-assessment"
    )
    assert [c.id for c in failed.value.checks] == ["source-connection"]
    assert not state.exists()


def _cdc_task(tmp_path: Path) -> tuple[TaskService, TaskSpec, Path]:
    service = TaskService(tmp_path / "state.db")
    file = _task(tmp_path, "full-load-and-cdc")
    spec = service.load(file)
    service.run(spec, file=file, assess=False)  # caught up: stopped
    return service, spec, file


def _triggers(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        count = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='trigger'").fetchone()
    conn.close()
    return int(count[0])


def test_a_delete_that_fails_leaves_the_task_as_it_was(tmp_path: Path) -> None:
    service, _, file = _cdc_task(tmp_path)
    before = service.record("t")
    assert before.status is S.STOPPED and _triggers(tmp_path / "src.db") > 0
    with pytest.raises(ConfigError):  # the capture objects cannot be reached
        service.delete("t", file=tmp_path / "missing.yaml")
    assert service.record("t") == before  # status, reason and times as they were
    file.rename(tmp_path / "moved.yaml")  # no task file: the triggers stay, with a warning
    deleted = service.delete("t")
    assert len(deleted.warnings) == 1 and "capture triggers" in deleted.warnings[0]
    assert _triggers(tmp_path / "src.db") > 0


def test_delete_drops_the_capture_objects_and_finishes_a_delete_cut_short(
    tmp_path: Path,
) -> None:
    service, spec, _ = _cdc_task(tmp_path)
    transition(service.store, "t", S.DELETING)  # a delete killed half way
    with pytest.raises(TaskError, match=r"is being deleted; finish with `opendms task delete t`"):
        service.run(spec, assess=False)
    assert service.delete("t") == Deleted("t")  # with the task file on record
    assert _triggers(tmp_path / "src.db") == 0


def test_delete_and_create_refuse_a_running_task(tmp_path: Path) -> None:
    service = TaskService(tmp_path / "state.db")
    file = _task(tmp_path)
    spec = service.load(file)
    service.create(spec)
    with TaskLock(service.state_path, "t"):
        with pytest.raises(TaskLockedError, match=rf"already running \(pid {os.getpid()}\)"):
            service.delete("t")
        with pytest.raises(TaskLockedError):
            service.create(spec, replace=True)
    assert service.record("t").status is S.READY


def test_a_run_whose_process_vanished_is_failed_and_runs_again(tmp_path: Path) -> None:
    service = TaskService(tmp_path / "state.db")
    file = _task(tmp_path)
    spec = service.load(file)
    service.create(spec)
    store = service.store
    transition(store, "t", S.STARTING)
    transition(store, "t", S.RUNNING)  # ... and its process was killed: no lock held
    assert (service.status("t", backlog=False).record.status, service.record("t").stop_reason) == (
        S.FAILED,
        GONE,
    )
    transition(store, "t", S.STARTING)
    transition(store, "t", S.RUNNING)  # killed again, and nobody looked before the next run
    result = service.run(spec, assess=False)  # the run ends the lost one first
    assert (result.record.status, result.record.stop_reason) == (
        S.STOPPED,
        "FULL_LOAD_ONLY_FINISHED",
    )


class MemoryStore:
    """A TaskStore in memory: the service works on the Protocol, not on SQLite."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, TaskRecord] = {}

    def save_task(self, name: str, source: str, target: str, mtype: str, spec: str) -> bool:
        known = self.records.get(name)
        if known is not None:
            self.records[name] = dataclasses.replace(
                known, source=source, target=target, migration_type=mtype, spec=spec
            )
            return False
        self.records[name] = TaskRecord(
            name, source, target, mtype, spec, S.CREATING, "", "now", None, None
        )
        return True

    def _set(self, name: str, **fields: object) -> None:
        self.records[name] = dataclasses.replace(self.records[name], **fields)  # type: ignore[arg-type]

    def set_file(self, name: str, file: str) -> None:
        self._set(name, file=file)

    def set_pid(self, name: str, pid: int | None) -> None:
        self._set(name, pid=pid)

    def set_phase(self, name: str, phase: str) -> None:
        self._set(name, phase=phase)

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
        record = self.records.get(name)
        if record is None or (allowed_from is not None and record.status not in allowed_from):
            return False
        if run is not ANY_RUN and record.started_at != run:
            return False
        self._set(name, status=status)
        if stamp and status in (S.STOPPED, S.FAILED):
            self._set(name, stop_reason=reason, stopped_at="now", pid=None)
        return True

    def task(self, name: str) -> TaskRecord | None:
        return self.records.get(name)

    def tasks(self) -> list[TaskRecord]:
        return [self.records[n] for n in sorted(self.records)]

    def tables(self, task: str) -> list[TableStats]:
        return []

    def data_errors(self, task: str) -> list[tuple[str, str, str, str]]:
        return []

    def reset_tables(self, task: str) -> None:
        pass

    def delete_task(self, name: str) -> None:
        del self.records[name]

    def close(self) -> None:
        pass


def test_the_service_on_another_task_store(tmp_path: Path) -> None:
    store: TaskStore = MemoryStore(tmp_path / "memory")
    service = TaskService(store)
    file = _task(tmp_path)
    spec = service.load(file)
    assert service.create(spec, file=file).status is S.READY
    assert [i.record.status for i in service.statuses(backlog=False)] == [S.READY]
    with pytest.raises(ConfigError, match=r"records its progress in the SQLite state store"):
        service.run(spec, assess=False)
    assert service.delete("t") == Deleted("t")
    assert service.statuses() == [] and not isinstance(store, StateStore)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("postgres://u:***@h/db", ["replication slot 'opendms_t1' and publication 'opendms_t1'"]),
        (
            "postgresql://h/db",
            ["pg_drop_replication_slot('opendms_t1'); DROP PUBLICATION opendms_t1"],
        ),
        ("sqlite:///x.db", ["capture triggers and change table stay"]),
        ("mysql://h/db", []),
        ("file:///lake", []),
    ],
)
def test_capture_left_behind_is_said_by_the_source_engine(source: str, expected: list[str]) -> None:
    """A CDC task deleted without its task file: the source's engine says what stays."""
    from opendms.service.replication import drop_replication

    warnings = drop_replication("t1", source, None)
    assert len(warnings) == len(expected)
    for text, part in zip(warnings, expected, strict=True):
        assert part in text
