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
from tests.support.sql import connect, query, table_rows

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
        self.pause = 0.002  # seconds between statements (pacing only)

    def run(self) -> None:
        """Write until stopped; a lost connection (a server restart) is reconnected."""
        conn: Any = None
        while not self.stop.is_set() and self.statements < self.limit:
            try:
                conn = conn or connect(self.url)
                self._one(conn)
                self.statements += 1
                time.sleep(self.pause)  # paces the load; no verdict depends on it
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


FULL_LOAD = "full load"
CATCH_UP = "applying cached changes"
STREAMING = "ongoing replication"


@dataclass
class CrashRun:
    """SIGKILL a ``full-load-and-cdc`` task ``kills`` times under write load, restart it
    each time, then let it catch up.

    Where each kill lands: ``schedule`` names the phase each kill aims at (``full load``,
    ``applying cached changes``, ``ongoing replication``; by default ``early_kills`` in the
    full load, the rest while streaming); the kill waits for this run of the task to be in
    that phase (at most 30 s), and :attr:`phases` records the phase the killed run had
    written last, read from the state store. ``events`` run between kills (source DDL).
    ``restart`` restarts the source's server under the running task (``restarts`` times).
    """

    source: str
    target: Any  # a URL, or {"url": ..., "settings": ...}
    workdir: Path
    kills: int = 10
    seed: int = 20261125
    early_kills: int = 3
    rows: int = 300_000  # the ledger's initial size (the writer's key range)
    in_load: Any = None  # () -> bool: the target is being loaded right now (soak only)
    streaming: Any = None  # () -> bool: the task has reached streaming (soak only)
    restart: Any = None  # () -> None: restart the source's server (the task recovers)
    restarts: int = 0  # server restarts, each while the task runs, before one of the kills
    name: str = "crash"
    schedule: list[str] | None = None
    events: dict[int, Any] = field(default_factory=dict)  # kill index -> () -> None
    writer: Any = None  # a Writer (default: the ledger Writer)
    phases: list[str] = field(default_factory=list)  # the phase each kill landed in
    statements: int = 0
    restarted: int = 0

    def run(self) -> None:
        task = self.workdir / f"{self.name}.yaml"
        tuning: dict[str, Any] = {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}}
        tuning["ErrorBehavior"] = {
            "RecoverableErrorInterval": 1,
            "RecoverableErrorThrottlingMax": 4,
            "RecoverableErrorStopRetryAfterThrottlingMax": False,
        }
        body = {"name": self.name, "source": self.source, "target": self.target}
        body |= {"migration_type": "full-load-and-cdc", "task_settings": tuning}
        task.write_text(yaml.safe_dump(body))
        exe = str(Path(sys.executable).parent / "opendms")
        base = [exe, "--state", str(self.state), "task", "run", "--quiet", "--skip-assessment"]
        rng = random.Random(self.seed)
        plan = self.schedule or [FULL_LOAD] * self.early_kills + [STREAMING] * (
            self.kills - self.early_kills
        )
        later = [i for i, p in enumerate(plan) if p == STREAMING]
        restart_at = (
            set(rng.sample(later, min(self.restarts, len(later)))) if self.restart else set()
        )
        writer = self.writer or Writer(self.source, 1_000_000, self.seed, rows=self.rows)
        thread = threading.Thread(target=writer.run)
        thread.start()
        try:
            for i, aim in enumerate(plan):
                self._kill_once([*base, "--follow", str(task)], rng, aim, i in restart_at)
                if i in self.events:
                    self.events[i]()
        finally:
            writer.stop.set()
            thread.join()
        self.statements = writer.statements
        done = subprocess.run([*base, str(task)], capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr

    @property
    def state(self) -> Path:
        return self.workdir / "state.db"

    def _kill_once(self, cmd: list[str], rng: random.Random, aim: str, restart: bool) -> None:
        log = self.workdir / f"{self.name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=out)
        self._until_phase(proc, aim)
        if aim == FULL_LOAD:
            time.sleep(rng.uniform(0.0, 0.2))  # somewhere inside the load (no verdict)
        elif aim == STREAMING:
            time.sleep(rng.uniform(0.2, 1.2))  # somewhere while streaming (no verdict)
        if restart:  # the running task must ride out a server restart by itself
            self.restart()
            self.restarted += 1
            self._until_phase(proc, STREAMING)
        if proc.poll() is not None:  # it must still run: it failed, say why at once
            lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            raise AssertionError(f"the task ended by itself (exit {proc.returncode}): {lines[-1]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.phases.append(self._phase())

    def _until_phase(self, proc: subprocess.Popen[bytes], aim: str) -> None:
        """Until this process's run of the task is in phase ``aim`` (at most 30 s; a
        full load that is over already counts as reached). Past the deadline the kill
        lands wherever the task is: :attr:`phases` records where, and the callers' verdicts
        are on those phases (the crash matrix asserts them), not on this wait."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            record, loading = self._record()
            if record is not None and record.pid == proc.pid:
                if record.phase == aim and (aim != FULL_LOAD or loading):
                    return
                if aim == FULL_LOAD and record.phase in (CATCH_UP, STREAMING):
                    return  # the load was too quick to catch
            time.sleep(0.01)  # polling interval only

    def _record(self) -> tuple[Any, bool]:
        if not self.state.exists():
            return None, False
        from opendms.state import StateStore, TableState

        store = StateStore(self.state)
        try:
            loading = any(t.state is TableState.FULL_LOAD for t in store.tables(self.name))
            return store.task(self.name), loading
        finally:
            store.close()

    def _phase(self) -> str:
        record, _ = self._record()
        return record.phase if record is not None else ""


def pg_copy_running(target: str) -> bool:
    """A COPY into the target PostgreSQL database is in progress (the full load)."""
    with psycopg.connect(target, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_stat_progress_copy WHERE datname = current_database()"
        ).fetchone()
    return row is not None
