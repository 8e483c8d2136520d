"""Crash tests and soak runs: a bounded write load, SIGKILLs at random moments, and a
row-for-row comparison of source and target (PostgreSQL or MySQL/MariaDB sources)."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from opendms.endpoints.base import EndpointURL
from opendms.testing.sql import connect, query, table_rows

SETUP_PG = (
    "CREATE TABLE ledger (id bigint PRIMARY KEY, account int, amount numeric(12,2), note text)",
    "INSERT INTO ledger SELECT g, g % 97, g * 0.01, repeat('x', 100) "
    "FROM generate_series(1, {rows}) g",
)
SETUP_MYSQL = (
    "CREATE TABLE ledger (id bigint PRIMARY KEY, account int, amount decimal(12,2), note text)",
    "INSERT INTO ledger SELECT seq, seq % 97, seq * 0.01, repeat('x', 100) FROM seq_1_to_{rows}",
)


def create_ledger(url: str, rows: int) -> None:
    mysql = EndpointURL.parse(url).scheme in ("mysql", "mariadb")
    conn = connect(url)
    try:
        for sql in SETUP_MYSQL if mysql else SETUP_PG:
            query(conn, sql.format(rows=rows))
    finally:
        conn.close()


class Writer:
    """Inserts, updates and deletes rows of ``ledger`` until stopped (at most ``limit``)."""

    def __init__(
        self, url: str, first_id: int, seed: int, limit: int = 1_000_000, rows: int = 300_000
    ) -> None:
        self.url = url
        self.next_id = first_id
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.limit = limit
        self.rows = rows
        self.statements = 0
        self.failures = 0  # statements that met a lost connection

    def run(self) -> None:
        """Write until stopped; a lost connection (a server restart) is reconnected."""
        conn: Any = None
        while not self.stop.is_set() and self.statements < self.limit:
            try:
                conn = conn or connect(self.url)
                self._one(conn)
                self.statements += 1
                time.sleep(0.002)
            except Exception:  # the server went away: whether the statement committed is
                _closed(conn)  # the source's business (the test compares with it)
                conn = None
                self.failures += 1
                self.stop.wait(0.2)
        _closed(conn)

    def _one(self, conn: Any) -> None:
        pick = self.rng.random()
        key = self.rng.randrange(1, self.rows)
        new = self.next_id
        if pick < 0.4:
            query(conn, "INSERT INTO ledger VALUES (%s, %s, %s, 'new')", (new, new % 97, new / 100))
            self.next_id += 1
        elif pick < 0.8:
            query(conn, "UPDATE ledger SET amount = amount + 1 WHERE id = %s", (key,))
        elif pick < 0.9:
            query(conn, "DELETE FROM ledger WHERE id = %s", (key,))
        else:
            query(conn, "BEGIN")
            query(conn, "UPDATE ledger SET note = 'tx' WHERE id = %s", (key,))
            query(conn, "INSERT INTO ledger VALUES (%s, 1, 1, 'tx')", (new,))
            query(conn, "COMMIT")
            self.next_id += 1


def _closed(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def compare_tables(source: str, target: str, table: str, key: str) -> None:
    """Assert both tables hold the same rows (ordered by ``key``)."""
    want, got = table_rows(source, table, key), table_rows(target, table, key)
    missing = {r[0] for r in want} - {r[0] for r in got}
    extra = {r[0] for r in got} - {r[0] for r in want}
    assert not missing and not extra, f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}"
    differ = [w[0] for w, g in zip(want, got, strict=True) if w != g]
    assert not differ, f"rows differ for keys {differ[:10]}"


@dataclass
class CrashRun:
    """SIGKILL a ``full-load-and-cdc`` task ``kills`` times under write load, restart it
    each time, then let it catch up. ``early_kills`` land inside the full load."""

    source: str
    target: str
    workdir: Path
    kills: int = 10
    seed: int = 20261125
    early_kills: int = 3
    rows: int = 300_000  # the ledger's initial size (the writer's key range)
    in_load: Any = None  # () -> bool: the target is being loaded right now
    streaming: Any = None  # () -> bool: the task has reached streaming (a checkpoint)
    restart: Any = None  # () -> None: restart the source's server (the task recovers)
    restarts: int = 0  # server restarts, each while the task runs, before one of the kills
    phases: list[bool] = field(default_factory=list)
    statements: int = 0
    restarted: int = 0

    def run(self) -> None:
        task = self.workdir / "task.yaml"
        spec = {"name": "crash", "source": self.source, "target": self.target}
        tuning: dict[str, Any] = {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}}
        tuning["ErrorBehavior"] = {
            "RecoverableErrorInterval": 1,
            "RecoverableErrorThrottlingMax": 4,
            "RecoverableErrorStopRetryAfterThrottlingMax": False,
        }
        body = {**spec, "migration_type": "full-load-and-cdc", "task_settings": tuning}
        task.write_text(yaml.safe_dump(body))
        exe = str(Path(sys.executable).parent / "opendms")
        base = [exe, "--state", str(self.workdir / "state.db"), "task", "run", "--quiet"]
        rng = random.Random(self.seed)
        later = range(self.early_kills, self.kills)
        restart_at = (
            set(rng.sample(later, min(self.restarts, len(later)))) if self.restart else set()
        )
        writer = Writer(self.source, 1_000_000, self.seed, rows=self.rows)
        thread = threading.Thread(target=writer.run)
        thread.start()
        try:
            for kill in range(self.kills):
                cmd = [*base, "--follow", str(task)]
                self._kill_once(cmd, rng, kill < self.early_kills, kill in restart_at)
        finally:
            writer.stop.set()
            thread.join()
        self.statements = writer.statements
        done = subprocess.run([*base, str(task)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr

    def _kill_once(
        self, cmd: list[str], rng: random.Random, early: bool, restart: bool = False
    ) -> None:
        log = self.workdir / "run.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)
        if early and self.in_load is not None:
            self._wait_for_load(proc)
            time.sleep(rng.uniform(0.0, 0.2))
        else:
            time.sleep(rng.uniform(0.3, 3.0))
        if restart:  # the running task must ride out a server restart by itself
            self._wait_running(proc)  # (a restart during its start-up check fails the start)
            self.restart()
            self.restarted += 1
            time.sleep(rng.uniform(2.0, 5.0))
        if proc.poll() is not None:  # it must still run: it failed, say why at once
            lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            raise AssertionError(f"the task ended by itself (exit {proc.returncode}): {lines[-1]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if self.streaming is not None:
            self.phases.append(bool(self.streaming()))

    def _wait_running(self, proc: subprocess.Popen[bytes]) -> None:
        """Until this process runs the task (past its start-up assessment), at most 30 s."""
        from opendms.state import StateStore, TaskStatus

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            store = StateStore(self.workdir / "state.db")
            try:
                record = store.task("crash")
            finally:
                store.close()
            ours = record is not None and record.pid == proc.pid
            if ours and record is not None and record.status is TaskStatus.RUNNING:
                return
            time.sleep(0.05)

    def _wait_for_load(self, proc: subprocess.Popen[bytes]) -> None:
        """Until the full load runs (at most 20 s, or until the task streams already)."""
        deadline, probe_at = time.monotonic() + 20, time.monotonic() + 1
        while time.monotonic() < deadline and proc.poll() is None and not self.in_load():
            if self.streaming is not None and time.monotonic() > probe_at:
                if self.streaming():  # probed once a second: the load is over already
                    return
                probe_at = time.monotonic() + 1
            time.sleep(0.01)


def pg_copy_running(target: str) -> bool:
    """A COPY into the target PostgreSQL database is in progress (the full load)."""
    with psycopg.connect(target, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_stat_progress_copy WHERE datname = current_database()"
        ).fetchone()
    return row is not None


def state_loading(state: Path, task: str = "crash") -> bool:
    """The task's state store shows a table being loaded (its full load is under way)."""
    if not state.exists():
        return False
    from opendms.state import StateStore, TableState

    store = StateStore(state)
    try:
        return any(t.state is TableState.FULL_LOAD for t in store.tables(task))
    finally:
        store.close()


def pg_checkpointed(target: str, task: str = "crash") -> bool:
    """The task holds a checkpoint in the target PostgreSQL database (it streams)."""
    with psycopg.connect(target) as conn:
        exists = conn.execute("SELECT to_regclass('opendms.checkpoints')").fetchone()
        if not exists or exists[0] is None:
            return False
        row = conn.execute("SELECT 1 FROM opendms.checkpoints WHERE task = %s", (task,))
        return row.fetchone() is not None
