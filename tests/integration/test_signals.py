"""SIGTERM / Ctrl-C stop a running task cleanly: status 'stopped', exit 130, no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from opendms.demo import build_retail
from opendms.state import StateStore, TaskStatus


def test_sigterm_stops_the_task(tmp_path: Path) -> None:
    db = tmp_path / "retail.db"
    build_retail(db, orders=150_000)
    task = tmp_path / "task.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "name": "big",
                "source": f"sqlite:///{db}",
                "target": f"sqlite:///{tmp_path}/copy.db",
                "task_settings": {"FullLoadSettings": {"CommitRate": 1000}},
            }
        )
    )
    state = tmp_path / "state.db"
    exe = Path(sys.executable).parent / "opendms"
    proc = subprocess.Popen(
        [str(exe), "--state", str(state), "task", "run", "--quiet", str(task)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)
        record = StateStore(state).task("big") if state.exists() else None
        if record and record.status is TaskStatus.RUNNING:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "interrupted" in err
    record = StateStore(state).task("big")
    assert record is not None
    assert record.status is TaskStatus.STOPPED and record.stop_reason == "STOPPED_BY_USER"
