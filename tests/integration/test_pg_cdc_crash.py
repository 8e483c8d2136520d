"""Crash test: SIGKILL a full-load-and-cdc task at random moments under write load.

Kills land during the full load, the hand-off and streaming (fixed seed). After the
last restart catches up, the target must equal the source: nothing lost, nothing
applied twice. ``bench/cdc_soak.py`` runs the same with more kills.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import yaml

from opendms.testing.crash import Writer, compare_tables

KILLS = 10
SEED = 20261125


def test_sigkill_anywhere_loses_and_duplicates_nothing(
    pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE ledger (id bigint PRIMARY KEY, account int, amount numeric(12,2), "
            "note text)"
        )
        conn.execute(
            "INSERT INTO ledger SELECT g, g % 97, g * 0.01, repeat('x', 100) "
            "FROM generate_series(1, 300000) g"
        )
    task = tmp_path / "task.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "name": "crash",
                "source": pg_db,
                "target": pg_target_db,
                "migration_type": "full-load-and-cdc",
                "task_settings": {"ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0}},
            }
        )
    )
    exe = str(Path(sys.executable).parent / "opendms")
    base = [exe, "--state", str(tmp_path / "state.db"), "task", "run", "--quiet", str(task)]
    rng = random.Random(SEED)
    writer = Writer(pg_db, first_id=1_000_000, seed=SEED)
    thread = threading.Thread(target=writer.run)
    thread.start()
    phases: list[bool] = []  # per kill: had the task reached streaming (a checkpoint)?
    try:
        for kill in range(KILLS):
            proc = subprocess.Popen(
                [*base, "--follow"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if kill < 3:  # the first kills land inside the full load's COPY
                _wait_for_copy(pg_target_db)
                time.sleep(rng.uniform(0.0, 0.2))
            else:
                time.sleep(rng.uniform(0.3, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            phases.append(_streaming(pg_target_db))
    finally:
        writer.stop.set()
        thread.join()
    done = subprocess.run(base, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert writer.statements > 50
    assert any(phases) and not all(phases), phases  # kills in full load and in streaming
    compare_tables(pg_db, pg_target_db, "ledger", "id")


def _wait_for_copy(target: str) -> None:
    deadline = time.monotonic() + 20
    with psycopg.connect(target, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT 1 FROM pg_stat_progress_copy WHERE datname = current_database()"
            ).fetchone()
            if row:
                return
            time.sleep(0.01)


def _streaming(target: str) -> bool:
    with psycopg.connect(target) as conn:
        exists = conn.execute("SELECT to_regclass('opendms.checkpoints')").fetchone()
        if not exists or exists[0] is None:
            return False
        row = conn.execute("SELECT 1 FROM opendms.checkpoints WHERE task = 'crash'").fetchone()
        return row is not None
