"""Cron schedules: validation, the scheduler on a fake clock (started, skipped, failed
runs recorded), and a real server whose clock is moved to the next due time."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from opendms.config import ScheduleType, load_task_file
from opendms.errors import ConfigError
from opendms.server.app import create_app
from opendms.server.schedules import Scheduler, next_time, schedule_runs
from opendms.service import TaskService
from opendms.state.lock import TaskLock
from tests.server.test_dms_api import MAPPINGS
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)
T0 = datetime.fromisoformat("2026-12-04T10:00:30+00:00")


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _task(tmp: Path, name: str, rows: int, schedule: str = "* * * * *") -> Path:
    src = tmp / f"{name}-src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(rows)])
    file = tmp / f"{name}.yaml"
    file.write_text(
        f"name: {name}\nsource: sqlite:///{src}\ntarget: sqlite:///{tmp / f'{name}-dst.db'}\n"
        f"schedule: '{schedule}'\n"
    )
    return file


def _target_rows(tmp: Path, name: str) -> int:
    path = tmp / f"{name}-dst.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def test_schedule_is_validated(tmp_path: Path) -> None:
    file = _task(tmp_path, "v", 1, schedule="0 25 * * *")
    with pytest.raises(ConfigError) as err:
        load_task_file(file)
    assert "$.schedule" in str(err.value) and "'0 25 * * *' is not a cron expression" in str(
        err.value
    )
    spec = load_task_file(_task(tmp_path, "ok", 1, schedule="0  2 * * 1-5"))
    assert spec.schedule == "0 2 * * 1-5" and spec.schedule_type is ScheduleType.RELOAD_TARGET
    assert next_time("0 2 * * *", T0) == datetime.fromisoformat("2026-12-05T02:00:00+00:00")


def test_scheduler_starts_skips_and_records(tmp_path: Path) -> None:
    state = tmp_path / "state"
    service = TaskService(state / "state.db")
    file = _task(tmp_path, "nightly", 25)
    service.create(load_task_file(file), file=file)
    clock = FakeClock(T0)
    scheduler = Scheduler(state, service, clock)
    try:
        assert scheduler.tick() == []  # first sight: the next due time is computed
        assert scheduler.next_due("nightly") == datetime.fromisoformat("2026-12-04T10:01:00+00:00")
        clock.now = T0 + timedelta(seconds=20)
        assert scheduler.tick() == []  # not due yet
        clock.now = T0 + timedelta(seconds=31)
        (run,) = scheduler.tick()
        assert (run.task, run.outcome, run.due) == (
            "nightly",
            "started",
            "2026-12-04T10:01:00+00:00",
        )
        wait_until(lambda: service.record("nightly").status.value == "stopped", 60, "the load")
        assert _target_rows(tmp_path, "nightly") == 25
        assert scheduler.next_due("nightly") == datetime.fromisoformat("2026-12-04T10:02:00+00:00")

        lock = TaskLock(state / "state.db", "nightly")  # as if a run were still going
        lock.acquire()
        try:
            clock.now = T0 + timedelta(seconds=95)
            (skipped,) = scheduler.tick()
        finally:
            lock.release()
        assert skipped.outcome == "skipped" and "still running" in skipped.reason

        file.unlink()  # the next start cannot find its task file: failed, with why
        clock.now = T0 + timedelta(seconds=151)
        (failed,) = scheduler.tick()
        assert failed.outcome == "failed" and "task file" in failed.reason
    finally:
        scheduler.close()
        service.close()
    runs = schedule_runs(state, "nightly")
    assert [(r.outcome, r.due[11:16]) for r in runs] == [
        ("started", "10:01"),
        ("skipped", "10:02"),
        ("failed", "10:03"),
    ]
    assert schedule_runs(state, "other") == []
    assert [r.outcome for r in schedule_runs(state, limit=1)] == ["failed"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def app_server(tmp_path: Path) -> Iterator[Any]:
    """A real server (uvicorn in a thread) and its app, for its supervisor's scheduler."""
    app = create_app(tmp_path / "state")
    port = _free_port()
    app.state.url = f"http://127.0.0.1:{port}"
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_until(lambda: srv.started, 10, "the server to start")
    yield app
    srv.should_exit = True
    thread.join(30)


def test_a_real_server_runs_a_due_schedule(app_server: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    service = TaskService(state / "state.db")
    file = _task(tmp_path, "refresh", 40)
    service.create(load_task_file(file), file=file)
    scheduler = app_server.state.supervisor.scheduler
    due = wait_until(lambda: scheduler.next_due("refresh"), 10, "the schedule to be seen")
    scheduler.clock = lambda: due + timedelta(seconds=1)  # the next minute has come
    runs = wait_until(lambda: schedule_runs(state, "refresh"), 30, "the scheduled run")
    assert [(r.outcome, r.due) for r in runs] == [("started", due.isoformat())]
    wait_until(lambda: _target_rows(tmp_path, "refresh") == 40, 60, "the scheduled load")
    wait_until(lambda: service.record("refresh").status.value == "stopped", 60, "its end")
    assert service.record("refresh").stop_reason == "FULL_LOAD_ONLY_FINISHED"
    service.close()


def test_the_rest_api_sets_a_schedule_and_shows_its_runs_and_log(
    app_server: Any, tmp_path: Path
) -> None:
    """A schedule given through the REST API reaches the task file; the scheduled run
    and the task's log are read back through the REST API."""
    import httpx

    from opendms.server.auth import load_or_create_token

    token, _ = load_or_create_token(tmp_path / "state")
    _task(tmp_path, "nightly", 25)  # the SQLite source
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=f"{app_server.state.url}/api/v1", headers=headers) as rest:
        for ident, kind, db in (("src", "source", "nightly-src.db"), ("dst", "target", "out")):
            made = rest.post(
                "/endpoints",
                json={
                    "identifier": ident,
                    "endpoint_type": kind,
                    "engine_name": "sqlite" if kind == "source" else "file",
                    "database_name": str(tmp_path / db),
                },
            )
            assert made.status_code == 201, made.text
        body = {
            "identifier": "nightly",
            "source": "src",
            "target": "dst",
            "table_mappings": json.loads(MAPPINGS),
            "schedule": "not cron",
        }
        bad = rest.post("/tasks", json=body)
        assert bad.status_code == 400 and bad.json()["error"]["path"] == "$.schedule", bad.text
        made = rest.post("/tasks", json={**body, "schedule": "* * * * *"}).json()
        assert (made["schedule"], made["schedule_type"]) == ("* * * * *", "reload-target")
        scheduler = app_server.state.supervisor.scheduler
        due = wait_until(lambda: scheduler.next_due("nightly"), 10, "the schedule to be seen")
        scheduler.clock = lambda: due + timedelta(seconds=1)
        runs = wait_until(lambda: rest.get("/tasks/nightly/schedule-runs").json(), 30, "a run")
        assert [(r["outcome"], r["due"]) for r in runs] == [("started", due.isoformat())]
        wait_until(lambda: _status(rest) == "stopped", 60, "the scheduled full load")
        tables = rest.get("/tasks/nightly/tables").json()
        assert [(t["table_name"], t["full_load_rows"]) for t in tables] == [("items", 25)]
        log = rest.get("/tasks/nightly/logs").json()
        assert any(r["component"] == "TASK_MANAGER" and r["level"] == "I" for r in log)
        assert any(r["component"] == "TARGET_LOAD" for r in log)
        errors_only = rest.get("/tasks/nightly/logs", params={"level": "E"}).json()
        assert all(r["level"] == "E" for r in errors_only)
        assert rest.get("/tasks/nightly/logs", params={"level": "X"}).status_code == 422
        assert rest.get("/tasks/nope/logs").status_code == 404
        cleared = rest.patch("/tasks/nightly", json={"schedule": ""}).json()
        assert cleared["schedule"] is None


def _status(rest: Any) -> str:
    return str(rest.get("/tasks/nightly").json()["status"])
