"""SIGTERM / Ctrl-C stop a running task cleanly: status 'stopped', exit 130, no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import yaml

from opendms.demo import build_retail
from opendms.state import StateStore, TaskStatus
from tests.waiting import wait_until


def _mid_load(state: Path, name: str, sizes: dict[str, int]) -> bool:
    """Some table of ``name`` has rows loaded but not all of them: the load is under way."""
    if not state.exists():
        return False
    tables = StateStore(state).tables(name)
    return any(0 < t.full_load_rows < sizes.get(t.name, 0) for t in tables)


def test_sigterm_stops_the_task(tmp_path: Path) -> None:
    db = tmp_path / "retail.db"
    sizes = build_retail(db, orders=150_000)
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

    def loading() -> bool:
        assert proc.poll() is None, f"the task ended before the signal: {proc.communicate()}"
        return _mid_load(state, "big", sizes)

    wait_until(loading, 60, "the full load to be under way")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "interrupted" in err
    record = StateStore(state).task("big")
    assert record is not None
    assert record.status is TaskStatus.STOPPED and record.stop_reason == "STOPPED_BY_USER"
