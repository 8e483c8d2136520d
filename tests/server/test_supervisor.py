"""Supervision of task processes by a real ``opendms serve`` in a subprocess (boto3
against it), with a PostgreSQL source under write load and a CDC task to PostgreSQL:

* the server is SIGKILLed during CDC and started again on the same state: the task's
  process outlived it and is adopted; the target ends equal to the source;
* the task's process is SIGKILLed: the supervisor marks the task failed with the reason,
  resumes it from its checkpoint, and the target ends equal to the source;
* with RecoverableErrorCount 0 a killed task stays failed, with DMS's StopReason and
  LastFailureMessage saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from opendms.state import StateStore, TaskRecord
from opendms.state.lock import pid_alive
from tests.server.dms import db_endpoint, make_task
from tests.support.crash import Writer, compare_tables, create_ledger
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

ROWS = 3000
MAPPINGS = json.dumps(
    {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "ledger",
                "object-locator": {"schema-name": "public", "table-name": "ledger"},
                "rule-action": "include",
            }
        ]
    }
)


def _settings(count: int = -1, interval: int = 1) -> str:
    return json.dumps(
        {
            "ErrorBehavior": {
                "RecoverableErrorCount": count,
                "RecoverableErrorInterval": interval,
                "RecoverableErrorThrottlingMax": 4,
                "RecoverableErrorStopRetryAfterThrottlingMax": False,
            },
            "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0},
        }
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """``opendms serve`` in a subprocess over one state folder."""

    def __init__(self, state: Path, log: Path) -> None:
        self.state, self.log = state, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> Any:
        port = _free_port()
        cmd = [sys.executable, "-m", "opendms.cli.main", "serve", "--state", str(self.state)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(port)], stdout=out, stderr=out, stdin=subprocess.DEVNULL
            )
        self.url = f"http://127.0.0.1:{port}"
        wait_until(self._up, 30, "the server to answer /healthz")
        return boto3.session.Session().client(
            "dms",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="y",
        )

    def _up(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """The test's folder; any task process still running at the end is killed."""
    yield tmp_path
    state = tmp_path / "state" / "state.db"
    if state.exists():
        store = StateStore(state)
        try:
            for record in store.tasks():
                if record.pid and pid_alive(record.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(record.pid, signal.SIGKILL)
        finally:
            store.close()


def _record(workdir: Path, name: str) -> TaskRecord:
    store = StateStore(workdir / "state" / "state.db")
    try:
        record = store.task(name)
    finally:
        store.close()
    assert record is not None
    return record


def _cdc_task(dms: Any, source: str, target: str, settings: str) -> str:
    src = db_endpoint(dms, "src", "source", "postgres", source)
    dst = db_endpoint(dms, "dst", "target", "postgres", target)
    task = make_task(dms, src, dst, MAPPINGS, ident="sup", settings=settings)
    dms.start_replication_task(
        ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
    )
    return str(task)


def _describe(dms: Any, task: str) -> dict[str, Any]:
    flt = [{"Name": "replication-task-arn", "Values": [task]}]
    found: dict[str, Any] = dms.describe_replication_tasks(Filters=flt)["ReplicationTasks"][0]
    return found


def _streaming(workdir: Path) -> bool:
    return _record(workdir, "sup").phase == "ongoing replication"


def _converged(source: str, target: str) -> bool:
    try:
        compare_tables(source, target, "ledger", "id")
    except AssertionError:
        return False
    return True


@contextlib.contextmanager
def _load(url: str) -> Iterator[Writer]:
    writer = Writer(url, 1_000_000, seed=7, rows=ROWS)
    writer.pause = 0.005
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        writer.stop.set()
        thread.join(60)


def _full_load_rows(dms: Any, task: str) -> int:
    stats = dms.describe_table_statistics(ReplicationTaskArn=task)["TableStatistics"]
    return int(stats[0]["FullLoadRows"])


def _failed_with_reason(dms: Any, task: str) -> dict[str, Any] | None:
    described = _describe(dms, task)
    if described["Status"] == "failed" and ";" in described.get("StopReason", ""):
        return described
    return None


def _kill_task(workdir: Path) -> int:
    pid = _record(workdir, "sup").pid
    assert pid, "the task's process has no pid on record"
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.postgres
def test_server_killed_during_cdc_adopts_its_task(
    workdir: Path, pg_db: str, pg_target_db: str
) -> None:
    create_ledger(pg_db, ROWS)
    server = Server(workdir / "state", workdir / "server.log")
    try:
        dms = server.start()
        task = _cdc_task(dms, pg_db, pg_target_db, _settings())
        with _load(pg_db) as writer:
            wait_until(lambda: _streaming(workdir), 120, "the task to stream changes")
            before = _record(workdir, "sup").pid
            wait_until(lambda: writer.statements > 50, 60, "writes under CDC")
            server.kill()  # the task's process outlives its server
            assert before and pid_alive(before)
            dms = server.start()
            wait_until(lambda: writer.statements > 150, 60, "writes after the restart")
            described = _describe(dms, task)
            assert described["Status"] == "running", described
            assert _record(workdir, "sup").pid == before  # adopted, not started again
        wait_until(lambda: _converged(pg_db, pg_target_db), 120, "the target to catch up")
        dms.stop_replication_task(ReplicationTaskArn=task)  # answers "stopping"
        wait_until(lambda: _describe(dms, task)["Status"] == "stopped", 120, "the stop")
        compare_tables(pg_db, pg_target_db, "ledger", "id")
        assert writer.statements > 150
    finally:
        server.stop()


@pytest.mark.postgres
def test_killed_task_process_is_failed_then_resumed(
    workdir: Path, pg_db: str, pg_target_db: str
) -> None:
    create_ledger(pg_db, ROWS)
    server = Server(workdir / "state", workdir / "server.log")
    try:
        dms = server.start()
        task = _cdc_task(dms, pg_db, pg_target_db, _settings(count=3, interval=3))
        with _load(pg_db) as writer:
            wait_until(lambda: _streaming(workdir), 120, "the task to stream changes")
            # a while under CDC: the supervisor has looked at the run (it reaps the
            # process it saw, for its exit status)
            wait_until(lambda: writer.statements > 200, 60, "writes under CDC")
            loaded = _full_load_rows(dms, task)
            killed = _kill_task(workdir)
            # DescribeReplicationTasks may find the process gone first (plain reason);
            # the supervisor adds what it knows at its next look
            failed = wait_until(
                lambda: _failed_with_reason(dms, task),
                30,
                "the task to be failed with the supervisor's reason",
            )
            assert failed is not None
            assert failed["StopReason"].startswith("process gone (killed?)"), failed
            assert "killed by SIGKILL" in failed["StopReason"], failed
            assert failed["LastFailureMessage"] == failed["StopReason"]
            wait_until(lambda: _describe(dms, task)["Status"] == "running", 60, "the resume")
            resumed = _record(workdir, "sup")
            assert resumed.pid not in (None, killed) and resumed.stop_reason == ""
            wait_until(lambda: writer.statements > 150, 60, "writes after the resume")
        wait_until(lambda: _converged(pg_db, pg_target_db), 120, "the target to catch up")
        dms.stop_replication_task(ReplicationTaskArn=task)
        wait_until(lambda: _describe(dms, task)["Status"] == "stopped", 120, "the stop")
        compare_tables(pg_db, pg_target_db, "ledger", "id")
        assert _full_load_rows(dms, task) == loaded >= ROWS  # resumed: no new full load
        log = (workdir / "state" / "logs" / "sup.log").read_text()
        assert "]W:  process gone; resuming in 3 s (restart 1)" in log
    finally:
        server.stop()


def test_with_no_recoverable_retries_a_killed_task_stays_failed(workdir: Path) -> None:
    src = workdir / "src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO ledger VALUES (?, ?)", [(i, f"n{i}") for i in range(20)])
    server = Server(workdir / "state", workdir / "server.log")
    try:
        dms = server.start()
        source = dms.create_endpoint(
            EndpointIdentifier="src",
            EndpointType="source",
            EngineName="sqlite",
            DatabaseName=str(src),
        )["Endpoint"]["EndpointArn"]
        target = dms.create_endpoint(
            EndpointIdentifier="dst",
            EndpointType="target",
            EngineName="sqlite",
            DatabaseName=str(workdir / "dst.db"),
        )["Endpoint"]["EndpointArn"]
        mappings = MAPPINGS.replace('"public"', '"%"')
        task = make_task(dms, source, target, mappings, ident="sup", settings=_settings(count=0))
        dms.start_replication_task(
            ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
        )
        wait_until(lambda: _streaming(workdir), 60, "the task to stream changes")
        killed = _kill_task(workdir)
        log = workdir / "state" / "logs" / "sup.log"
        wait_until(lambda: "not restarted" in log.read_text(), 30, "the supervisor to give up")
        described = _describe(dms, task)
        assert described["Status"] == "failed"
        reason = described["StopReason"]
        assert reason.startswith("process gone (killed?)") and reason.endswith(
            "not restarted: RecoverableErrorCount is 0"
        ), reason
        assert described["LastFailureMessage"] == reason
        assert "]E:  process gone; not restarted: RecoverableErrorCount is 0" in log.read_text()
        # a server restart (its supervisor looks at the tasks before it serves) does not
        # resume a task the supervisor gave up on either
        server.stop()
        dms = server.start()
        assert _describe(dms, task)["Status"] == "failed"
        assert not pid_alive(killed) and _record(workdir, "sup").pid is None
    finally:
        server.stop()
