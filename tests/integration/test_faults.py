"""Fault tests (issue 8, section 1): a running task survives servers restarting, its
connections being killed, a full target disk and a cut network, under write load, and
ends with the target equal to the source, value for value. The task process is never
restarted by the test: it recovers by itself (RecoverableError* settings).

Each test has its own private servers (restarting them must not disturb other tests).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opendms.state import StateStore
from tests.support.crash import compare_tables, create_ledger, pg_copy_running
from tests.support.faults import (
    Load,
    NetCut,
    can_cut_network,
    fill,
    kill_mysql_connections,
    small_disk,
    terminate_pg_backends,
)
from tests.support.servers import MariaDBServer, PostgresServer
from tests.support.sql import execute
from tests.waiting import wait_until

EXE = [sys.executable, "-m", "opendms.cli.main"]
RUN_FLAGS = ("--quiet", "--follow", "--skip-assessment")
ROWS = 40_000
BIG = 300_000  # long enough a load to restart a server in the middle of it
RETRY = {
    "RecoverableErrorInterval": 1,
    "RecoverableErrorThrottling": True,
    "RecoverableErrorThrottlingMax": 4,
    "RecoverableErrorStopRetryAfterThrottlingMax": False,
}


@pytest.fixture
def pg_pair() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    with PostgresServer() as source, PostgresServer() as target:
        yield source, target


@pytest.fixture
def mariadb() -> Iterator[MariaDBServer]:
    with MariaDBServer() as server:
        yield server


@pytest.fixture
def pg_target() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


class Task:
    """``opendms task run --follow`` in the background, for one task file."""

    def __init__(self, tmp: Path, source: str, target: str, rate: int = 10000) -> None:
        self.file, self.state = tmp / "task.yaml", tmp / "state.db"
        settings = {
            "ErrorBehavior": RETRY,
            "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0},
            "FullLoadSettings": {"CommitRate": rate},
        }
        spec = {
            "name": "fault",
            "source": source,
            "target": target,
            "migration_type": "full-load-and-cdc",
            "task_settings": settings,
        }
        self.file.write_text(yaml.safe_dump(spec))
        self.log = (tmp / "task.log").open("w")
        self.proc = subprocess.Popen(
            [*EXE, "--state", str(self.state), "-v", "task", "run", *RUN_FLAGS, str(self.file)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def phase(self) -> str:
        record = StateStore(self.state).task("fault") if self.state.exists() else None
        return record.phase if record is not None else ""

    def wait_live(self, timeout: float = 120) -> None:
        _until("the task to stream", lambda: self.phase() == "ongoing replication", timeout, self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def retries(self) -> int:
        """How many recoverable errors the task has logged (and is retrying)."""
        return self.text().count("retrying in")

    def applied(self) -> int:
        """The changes CDC has applied so far (the state store's per-table counts)."""
        if not self.state.exists():
            return 0
        store = StateStore(self.state)
        try:
            counts = store.change_counts("fault")
        finally:
            store.close()
        return sum(i + u + d for i, u, d, _ in counts.values())

    def streams(self, changes: int = 50, timeout: float = 60) -> None:
        """Until the task has applied ``changes`` more changes of the write load."""
        mark = self.applied()
        _until(
            f"{changes} more changes applied",
            lambda: self.applied() >= mark + changes,
            timeout,
            self,
        )

    def recovers(self, retries: int, timeout: float = 90) -> None:
        """After a fault: the task has met it (a retry beyond the ``retries`` logged
        before) and has gone on applying the load's changes after it."""
        _until("the task to retry after the fault", lambda: self.retries() > retries, timeout, self)
        self.streams(timeout=timeout)

    def stop(self) -> str:
        """SIGTERM (finish the batch, checkpoint), the exit code must be 0; the log."""
        assert self.alive(), self.text()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(120)
        assert code == 0, self.text()
        return self.text()

    def text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.log.close()


def _until(what: str, check: Callable[[], Any], timeout: float, task: Task | None = None) -> None:
    """:func:`wait_until` ``check`` (an error in it, a server that is down, counts as not
    yet); the task ending meanwhile fails at once; its log is added to a timeout."""

    def ready() -> bool:
        if task is not None and not task.alive():
            raise AssertionError(f"the task ended while waiting for {what}:\n{task.text()}")
        try:
            return bool(check())
        except Exception:
            return False

    try:
        wait_until(ready, timeout, what, 0.1)
    except AssertionError as exc:
        if task is None or not task.alive():
            raise
        task.proc.send_signal(signal.SIGUSR1)  # its threads' stacks into its log
        time.sleep(1)
        raise AssertionError(f"{exc}:\n{task.text()}") from None


def _equal_soon(source: str, target: str, task: Task, timeout: float = 90) -> None:
    """The load has stopped: the running task must bring the target level with the
    source by itself."""
    last: list[str] = []

    def same() -> bool:
        try:
            compare_tables(source, target, "ledger", "id")
            return True
        except AssertionError as exc:
            last[:] = [str(exc)]
            return False

    _until("the target to equal the source", same, timeout, task)


@pytest.fixture
def task_box() -> Iterator[list[Task]]:
    tasks: list[Task] = []
    yield tasks
    for task in tasks:
        if task.alive():
            task.kill()


def _pg_dbs(pair: tuple[PostgresServer, PostgresServer]) -> tuple[str, str]:
    source, target = pair
    return source.create_database("src"), target.create_database("dst")


def test_pg_source_restarts_during_full_load_and_cdc(
    pg_pair: tuple[PostgresServer, PostgresServer], tmp_path: Path, task_box: list[Task]
) -> None:
    src, dst = _pg_dbs(pg_pair)
    create_ledger(src, BIG)
    with Load(src, 10_000_000, seed=1, rows=BIG) as load:
        task = Task(tmp_path, src, dst, rate=2000)
        task_box.append(task)
        _until("the full load's COPY", lambda: pg_copy_running(dst), 60, task)
        pg_pair[0].restart(down=1.0)  # the exported snapshot is gone: the load starts over
        task.wait_live()
        assert "starts over with a new slot" in task.text()
        task.streams()
        retries = task.retries()
        pg_pair[0].restart(down=2.0)  # during CDC, under writes (down: the fault's length)
        task.recovers(retries)
    assert load.statements > 100 and load.failures > 0
    _equal_soon(src, dst, task)
    log = task.stop()
    assert "retrying in" in log


def test_pg_target_restart_and_killed_backends_during_cdc(
    pg_pair: tuple[PostgresServer, PostgresServer], tmp_path: Path, task_box: list[Task]
) -> None:
    src, dst = _pg_dbs(pg_pair)
    create_ledger(src, ROWS)
    with Load(src, 10_000_000, seed=2, rows=ROWS) as load:
        task = Task(tmp_path, src, dst)
        task_box.append(task)
        task.wait_live()
        task.streams()
        retries = task.retries()
        pg_pair[1].restart(down=2.0)  # (down: the fault's length)
        task.recovers(retries)
        retries = task.retries()
        assert terminate_pg_backends(pg_pair[1].url(), "dst") >= 1  # the applier's session
        task.recovers(retries)
        retries = task.retries()
        assert terminate_pg_backends(pg_pair[0].url(), "src") >= 1  # the WAL sender, reads
        task.recovers(retries)
    assert load.statements > 100
    _equal_soon(src, dst, task)
    assert task.stop().count("retrying in") >= 2


def test_mariadb_source_restart_and_killed_dump_during_cdc(
    mariadb: MariaDBServer, pg_target: PostgresServer, tmp_path: Path, task_box: list[Task]
) -> None:
    src, dst = mariadb.create_database("src"), pg_target.create_database("dst")
    create_ledger(src, ROWS)
    with Load(src, 10_000_000, seed=3, rows=ROWS) as load:
        task = Task(tmp_path, src, dst)
        task_box.append(task)
        task.wait_live()
        task.streams()
        retries = task.retries()
        dump = lambda row: "Binlog Dump" in str(row[4])  # noqa: E731
        _until("the binlog dump connection", lambda: kill_mysql_connections(src, dump), 30, task)
        task.recovers(retries)
        retries = task.retries()
        mariadb.restart(down=2.0)  # (down: the fault's length)
        task.recovers(retries)
    assert load.statements > 100 and load.failures > 0
    _equal_soon(src, dst, task)
    assert task.stop().count("retrying in") >= 2


def test_a_full_target_disk_is_waited_out(
    pg_pair: tuple[PostgresServer, PostgresServer], tmp_path: Path, task_box: list[Task]
) -> None:
    src, dst = _pg_dbs(pg_pair)
    create_ledger(src, ROWS)
    target = pg_pair[1]
    owner = _pg_owner(target)
    with small_disk(64, owner) as disk:
        target.execute(f"CREATE TABLESPACE small LOCATION '{disk}'")
        target.execute("ALTER DATABASE dst SET default_tablespace = small")
        with Load(src, 10_000_000, seed=4, rows=ROWS) as load:
            task = Task(tmp_path, src, dst)
            task_box.append(task)
            task.wait_live()
            retries = task.retries()
            filler = fill(disk)
            _until("a write refused for space", lambda: "No space left" in task.text(), 60, task)
            _until(
                "the task to retry the refused write", lambda: task.retries() > retries, 60, task
            )
            filler.unlink()  # the disk has room again: the task goes on by itself
            task.streams(timeout=90)
        assert load.statements > 100
        _equal_soon(src, dst, task)
        task.stop()
        target.execute("DROP DATABASE dst WITH (FORCE)")
        target.execute("DROP TABLESPACE small")


def _pg_owner(server: PostgresServer) -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    import pwd

    user = pwd.getpwnam("postgres")
    return user.pw_uid, user.pw_gid


@pytest.mark.skipif(not can_cut_network(), reason="network namespaces need root and iproute2")
def test_a_network_cut_longer_than_the_timeouts(tmp_path: Path, task_box: list[Task]) -> None:
    """The MariaDB source and the PostgreSQL target each sit behind a link that goes down
    for longer than the connections' timeouts (no reset reaches either side)."""
    with NetCut() as src_net, NetCut() as dst_net:
        source = MariaDBServer().in_netns(src_net.name, src_net.inside)
        target = PostgresServer().in_netns(dst_net.name, dst_net.inside)
        with source, target:
            src, dst = source.create_database("src"), target.create_database("dst")
            create_ledger(src, ROWS)
            with Load(src, 10_000_000, seed=5, rows=ROWS) as load:
                task = Task(tmp_path, src, dst)
                task_box.append(task)
                task.wait_live()
                task.streams()
                retries = task.retries()
                src_net.cut()  # until the binlog heartbeat silence limit (15 s) tells the task
                _until(
                    "the task to give up the silent binlog stream",
                    lambda: task.retries() > retries,
                    60,
                    task,
                )
                src_net.restore()
                task.streams(timeout=120)
                retries = task.retries()
                dst_net.cut()  # until the TCP keepalive / user timeouts (~30 s) tell the task
                _until(
                    "the task to give up the silent target",
                    lambda: task.retries() > retries,
                    90,
                    task,
                )
                dst_net.restore()
                task.streams(timeout=120)
            assert load.statements > 100
            _equal_soon(src, dst, task, timeout=120)
            assert task.stop().count("retrying in") >= 2


def test_full_load_reloads_only_the_table_whose_connection_dropped(
    mariadb: MariaDBServer, pg_target: PostgresServer, tmp_path: Path
) -> None:
    """A full-load task: the MariaDB target restarts while the big table loads; that table
    is loaded again (its rows were committed batch by batch), the finished one is not."""
    src = pg_target.create_database("src")
    create_ledger(src, BIG)
    execute(src, ["CREATE TABLE a_small (id int PRIMARY KEY)", "INSERT INTO a_small VALUES (1)"])
    dst = mariadb.create_database("dst")
    spec = {
        "name": "fl",
        "source": src,
        "target": dst,
        "task_settings": {
            "ErrorBehavior": RETRY,
            "FullLoadSettings": {"MaxFullLoadSubTasks": 1, "CommitRate": 5000},
        },
    }
    file, state = tmp_path / "fl.yaml", tmp_path / "state.db"
    file.write_text(yaml.safe_dump(spec))
    log = tmp_path / "fl.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*EXE, "--state", str(state), "-v", "task", "run", "--quiet", str(file)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _until("the ledger to be loading", lambda: _loading(state, "fl", "ledger"), 60)
        mariadb.restart(down=1.0)
        assert proc.wait(240) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    again = [line for line in text.splitlines() if "loading it again" in line]
    assert again and all("table public.ledger:" in line for line in again), text
    compare_tables(src, dst, "ledger", "id")
    compare_tables(src, dst, "a_small", "id")


def _loading(state: Path, task: str, table: str) -> bool:
    if not state.exists():
        return False
    stats = {t.name: t for t in StateStore(state).tables(task)}
    return table in stats and 0 < stats[table].full_load_rows < BIG


def test_fatal_errors_are_not_retried(
    pg_pair: tuple[PostgresServer, PostgresServer], tmp_path: Path, task_box: list[Task]
) -> None:
    """The replication slot dropped under a running task: the changes after its position
    are lost to it, so it fails at once with the reason instead of retrying."""
    src, dst = _pg_dbs(pg_pair)
    create_ledger(src, 1000)
    task = Task(tmp_path, src, dst)
    task_box.append(task)
    task.wait_live()
    source = pg_pair[0]
    source.execute(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE active_pid > 0"
    )
    _until(
        "the slot to be dropped",
        lambda: source.execute("SELECT pg_drop_replication_slot('opendms_fault')") is not None,
        30,
    )
    assert task.proc.wait(60) == 1
    log = task.text()
    assert "replication slot 'opendms_fault' is gone" in log, log
    assert log.count("retrying in") <= 1  # the lost stream, then the missing slot is final
    record = StateStore(task.state).task("fault")
    assert (
        record is not None and record.status.value == "failed" and "is gone" in record.stop_reason
    )
