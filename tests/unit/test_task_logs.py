"""Per-task logs: the DMS line format, parsing, filters, rotation, scrubbing, and a real
background run's log."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from opendms.config import task_from_dict
from opendms.errors import ConfigError
from opendms.service.logs import (
    LogLine,
    Scrubber,
    TaskLogFormatter,
    append_line,
    component_of,
    log_path,
    parse_lines,
    read_task_log,
    task_log,
)
from tests.waiting import wait_until


def _record(name: str, level: int, msg: str, created: float = 1_796_378_400.0) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, None, None)
    record.created = created  # 2026-12-04T10:00:00Z
    return record


def test_format_is_dms_style() -> None:
    fmt = TaskLogFormatter()
    line = fmt.format(_record("opendms.replicate", logging.INFO, "resuming at 0/16B3748"))
    assert line == "2026-12-04T10:00:00 [SOURCE_CAPTURE  ]I:  resuming at 0/16B3748"
    assert fmt.format(_record("opendms.fullload", logging.ERROR, "x")).startswith(
        "2026-12-04T10:00:00 [TARGET_LOAD     ]E:  "
    )
    assert "]W:  " in fmt.format(_record("opendms.task", logging.WARNING, "w"))
    assert "]D:  " in fmt.format(_record("opendms.task", logging.DEBUG, "d"))


@pytest.mark.parametrize(
    ("logger", "component"),
    [
        ("opendms.fullload", "TARGET_LOAD"),
        ("opendms.sqlite.capture", "SOURCE_CAPTURE"),
        ("opendms.replicate", "SOURCE_CAPTURE"),
        ("opendms.cdc", "TARGET_APPLY"),
        ("opendms.lake.cdc", "TARGET_APPLY"),
        ("opendms.lake", "TARGET_LOAD"),
        ("opendms.validate", "VALIDATOR"),
        ("opendms.transform", "SOURCE_UNLOAD"),
        ("opendms.task", "TASK_MANAGER"),
        ("opendms.recover", "TASK_MANAGER"),
        ("opendms.cdcx", "TASK_MANAGER"),  # a prefix counts only at a dot
    ],
)
def test_components(logger: str, component: str) -> None:
    assert component_of(logger) == component


def test_scrubber_masks_passwords() -> None:
    scrub = Scrubber(["s3cr3t-pw"])
    text = scrub("postgresql://app:hunter2@db:5432/x password=abc s3cr3t-pw token: tok123")
    assert text == "postgresql://app:***@db:5432/x password=*** *** token: ***"
    spec = task_from_dict(
        {
            "name": "t",
            "source": "postgresql://u:p%40ss99@h/db",
            "target": {"url": "sqlite:///x.db", "settings": {"SecretKey": "k3y-value"}},
        },
        "test",
    )
    scrub = Scrubber.of_spec(spec)
    assert scrub("failed: p@ss99 and p%40ss99 and k3y-value") == "failed: *** and *** and ***"


def test_parse_keeps_continuation_lines() -> None:
    lines = [
        "noise before any record",
        "2026-12-04T10:00:00 [TASK_MANAGER    ]I:  started",
        "2026-12-04T10:00:01 [TARGET_LOAD     ]E:  table failed",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "2026-12-04T10:00:02 [SOURCE_CAPTURE  ]W:  slow",
    ]
    got = parse_lines(lines)
    assert got == [
        LogLine("2026-12-04T10:00:00", "TASK_MANAGER", "I", "started"),
        LogLine(
            "2026-12-04T10:00:01",
            "TARGET_LOAD",
            "E",
            'table failed\nTraceback (most recent call last):\n  File "x.py", line 1',
        ),
        LogLine("2026-12-04T10:00:02", "SOURCE_CAPTURE", "W", "slow"),
    ]


def _write(state: Path, task: str, lines: list[str]) -> None:
    path = log_path(state, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def test_read_filters_by_level_component_and_text(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    _write(
        state,
        "t",
        [
            "2026-12-04T10:00:00 [TASK_MANAGER    ]I:  task t starting",
            "2026-12-04T10:00:01 [TARGET_LOAD     ]W:  table a: retrying",
            "2026-12-04T10:00:02 [TARGET_LOAD     ]E:  table b failed: Disk Full",
            "2026-12-04T10:00:03 [SOURCE_CAPTURE  ]D:  polled",
        ],
    )
    assert [x.message for x in read_task_log(state, "t")] == [
        "task t starting",
        "table a: retrying",
        "table b failed: Disk Full",
        "polled",
    ]
    assert [x.level for x in read_task_log(state, "t", level="W")] == ["W", "E"]
    assert [x.level for x in read_task_log(state, "t", level="error")] == ["E"]
    assert [x.time[-2:] for x in read_task_log(state, "t", component="target_load")] == ["01", "02"]
    assert [x.level for x in read_task_log(state, "t", search="disk full")] == ["E"]
    assert [x.message for x in read_task_log(state, "t", limit=1)] == ["polled"]
    assert read_task_log(state, "other") == []
    with pytest.raises(ConfigError, match="log level 'loud'"):
        read_task_log(state, "t", level="loud")


def test_rotation_keeps_five_files_read_oldest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import opendms.service.logs as logs

    monkeypatch.setattr(logs, "MAX_BYTES", 400)
    state = tmp_path / "state.db"
    spec = task_from_dict(
        {"name": "rot", "source": "sqlite:///a.db", "target": "sqlite:///b.db"}, "t"
    )
    log = logging.getLogger("opendms.fullload")
    with task_log(state, spec) as path:
        for i in range(60):
            log.info("row batch %03d", i)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["rot.log", *(f"rot.log.{i}" for i in range(1, 6))]
    assert all(p.stat().st_size <= 400 for p in path.parent.iterdir())
    assert all(p.stat().st_mode & 0o077 == 0 for p in path.parent.iterdir())
    got = [x.message for x in read_task_log(state, "rot") if x.message.startswith("row batch")]
    numbers = [int(m.split()[-1]) for m in got]
    assert numbers == sorted(numbers) and numbers[-1] == 59  # newest last, oldest rotated out
    assert numbers[0] > 0


def test_task_log_records_start_end_and_keeps_stderr_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state.db"
    spec = task_from_dict(
        {"name": "q", "source": "postgresql://u:topsecret@h/db", "target": "sqlite:///b.db"}, "t"
    )
    caplog.set_level(logging.WARNING)
    with task_log(state, spec):
        logging.getLogger("opendms.fullload").info("an info line")
        logging.getLogger("opendms.fullload").warning("a warning with topsecret")
    lines = read_task_log(state, "q")
    assert [(x.component, x.level) for x in lines] == [
        ("TASK_MANAGER", "I"),
        ("TARGET_LOAD", "I"),
        ("TARGET_LOAD", "W"),
    ]
    assert "postgresql://u:***@h/db" in lines[0].message
    assert lines[2].message == "a warning with ***"
    assert "topsecret" not in log_path(state, "q").read_text()
    # the process's own handlers still get only what they got before (warnings)
    assert [r.getMessage() for r in caplog.records] == ["a warning with topsecret"]
    assert logging.getLogger("opendms").propagate


def test_append_line(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    append_line(state, "a", "W", "process gone; resuming in 1 s")
    (line,) = read_task_log(state, "a")
    assert (line.component, line.level, line.message) == (
        "TASK_MANAGER",
        "W",
        "process gone; resuming in 1 s",
    )


def test_a_background_run_writes_task_manager_and_target_load_lines(tmp_path: Path) -> None:
    src = tmp_path / "src.db"
    with sqlite3.connect(src) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(40)])
    file = tmp_path / "t.yaml"
    file.write_text(f"name: bg\nsource: sqlite:///{src}\ntarget: sqlite:///{tmp_path / 'dst.db'}\n")
    state = tmp_path / "st" / "state.db"
    cmd = [sys.executable, "-m", "opendms.cli.main", "--state", str(state), "task", "start", "bg"]
    done = subprocess.run([*cmd, "--file", str(file)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    def ended() -> bool:
        return any("ended" in x.message for x in read_task_log(state, "bg"))

    wait_until(ended, 60, "the task's end in its log")
    lines = read_task_log(state, "bg")
    components = {x.component for x in lines}
    assert {"TASK_MANAGER", "TARGET_LOAD"} <= components, lines
    assert lines[-1].message == "task bg ended: stopped (FULL_LOAD_ONLY_FINISHED)"
    assert any(x.message == "loaded table main.items (40 rows)" for x in lines)
