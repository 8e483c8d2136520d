"""The broker targets' acceptance run: a SQLite source, a ``full-load-and-cdc`` task to a
``nats://`` or ``redis://`` endpoint run as a process, changes on the source while it
streams, a SIGKILL mid-stream and a restart, more changes, then a final catch-up run.

The writer logs every change it commits (SQLite commits one writer at a time, so the log
is the commit order); :func:`check_records` compares the records a broker holds, read
with the broker's own client library, with that log."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.crash import STREAMING

ROWS = 200
TASK = "to-broker"


def create_source(path: Path) -> str:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER, note TEXT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(i, i, f"n{i}") for i in range(1, ROWS + 1)]
        )
    conn.close()
    return f"sqlite:///{path}"


@dataclass
class Writer:
    """Inserts, updates and deletes ``orders`` rows until stopped; ``log`` holds each
    change committed: (op, id, qty after or None)."""

    path: Path
    seed: int = 13
    log: list[tuple[str, int, int | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    next_id: int = ROWS + 1

    def run(self) -> None:
        rng, conn = random.Random(self.seed), sqlite3.connect(self.path, timeout=30)
        try:
            while not self.stop.is_set():
                self._one(conn, rng)
                time.sleep(0.003)  # pacing only
        finally:
            conn.close()

    def _one(self, conn: sqlite3.Connection, rng: random.Random) -> None:
        live = [r[0] for r in conn.execute("SELECT id FROM orders ORDER BY id")]
        pick, key = rng.random(), rng.choice(live) if live else 0
        with conn:
            if pick < 0.4 or not live:
                key, self.next_id = self.next_id, self.next_id + 1
                conn.execute("INSERT INTO orders VALUES (?, ?, ?)", (key, key * 10, "new"))
                self.log.append(("I", key, key * 10))
            elif pick < 0.8:
                qty = rng.randrange(1_000_000)
                conn.execute("UPDATE orders SET qty = ? WHERE id = ?", (qty, key))
                self.log.append(("U", key, qty))
            else:
                conn.execute("DELETE FROM orders WHERE id = ?", (key,))
                self.log.append(("D", key, None))


@dataclass
class Run:
    """The task, its process runs, and the writer."""

    workdir: Path
    source: str
    target: str
    kills: int = 0

    def task_file(self) -> Path:
        task = self.workdir / "task.yaml"
        tuning = {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}}
        body: dict[str, Any] = {"name": TASK, "source": self.source, "target": self.target}
        body |= {"migration_type": "full-load-and-cdc", "task_settings": tuning}
        task.write_text(yaml.safe_dump(body))
        return task

    def command(self, follow: bool) -> list[str]:
        exe = str(Path(sys.executable).parent / "opendms")
        state = str(self.workdir / "state.db")
        base = [exe, "--state", state, "task", "run", "--quiet", "--skip-assessment"]
        return [*base, *(["--follow"] if follow else []), str(self.task_file())]

    def start(self) -> subprocess.Popen[bytes]:
        with (self.workdir / "task.log").open("ab") as out:
            proc = subprocess.Popen(self.command(True), stdout=subprocess.DEVNULL, stderr=out)
        self.until_streaming(proc)
        return proc

    def until_streaming(self, proc: subprocess.Popen[bytes]) -> None:
        from opendms.state import StateStore

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, (self.workdir / "task.log").read_text()[-3000:]
            store = StateStore(self.workdir / "state.db")
            try:
                record = store.task(TASK)
            finally:
                store.close()
            if record is not None and record.pid == proc.pid and record.phase == STREAMING:
                return
            time.sleep(0.05)  # polling interval only
        raise AssertionError("the task did not reach streaming in 60 s")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.poll() is None, (self.workdir / "task.log").read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.kills += 1

    def catch_up(self) -> None:
        done = subprocess.run(self.command(False), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]

    def validate(self) -> None:
        """``opendms validate``: the target read back (folded records) equals the source."""
        exe = str(Path(sys.executable).parent / "opendms")
        state = str(self.workdir / "state.db")
        cmd = [exe, "--state", state, "validate", "--json", str(self.task_file())]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def run_with_kills(tmp_path: Path, target: str, kills: int = 2) -> Writer:
    """The whole run: load, stream under writes with ``kills`` SIGKILLs, catch up."""
    source = create_source(tmp_path / "src.db")
    run = Run(tmp_path, source, target)
    writer = Writer(tmp_path / "src.db")
    proc = run.start()
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        for _ in range(kills):
            time.sleep(0.8)  # let changes stream (no verdict depends on it)
            run.kill(proc)
            proc = run.start()
        time.sleep(0.8)
    finally:
        writer.stop.set()
        thread.join()
        if proc.poll() is None:
            run.kill(proc)
    run.catch_up()
    run.validate()
    return writer


def check_records(records: list[dict[str, Any]], writer: Writer) -> None:
    """The broker's records (JSON change records, in stream order) against the source:
    the load's rows, then every change the writer made, in order per key, once each."""
    ids = [r["id"] for r in records if r["id"] is not None]
    assert len(ids) == len(set(ids)), "a record id appears twice"
    bodies = [r["record"] for r in records]
    load = [b for b in bodies if b["position"] == "load" and b["op"] == "I"]
    assert sorted(b["key"]["id"] for b in load) == list(range(1, ROWS + 1))
    changes = [b for b in bodies if b["position"] != "load"]
    got: dict[int, list[tuple[str, int, int | None]]] = defaultdict(list)
    for b in changes:
        after = b["after"] or {}
        got[b["key"]["id"]].append((b["op"], b["key"]["id"], after.get("qty")))
    want: dict[int, list[tuple[str, int, int | None]]] = defaultdict(list)
    for op, key, qty in writer.log:
        want[key].append((op, key, qty))
    assert len(writer.log) > 50, len(writer.log)
    wrong = {
        k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)
    }
    assert not wrong, f"keys whose records differ (got, want): {dict(list(wrong.items())[:5])}"
    assert len(changes) == len(writer.log)


def body(data: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(data)
    return loaded
