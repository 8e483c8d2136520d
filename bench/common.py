"""Helpers shared by the benchmarks: timing, child RSS, opendms runs, tool installs."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

BIN = Path(sys.executable).parent


def run_timed(
    args: Sequence[str] | str, shell: bool = False, env: dict[str, str] | None = None
) -> tuple[float, int]:
    """Run a command; returns (seconds, peak RSS of it and its children in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, shell=shell, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed ({status}): {args}")
    return took, usage.ru_maxrss // 1024


def opendms_task(tmp: Path, name: str, spec: dict[str, Any]) -> tuple[float, int]:
    """Run one opendms task in a child process (quiet); (seconds, peak RSS MB)."""
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **spec}))
    cmd = [
        str(BIN / "opendms"),
        "--state",
        str(tmp / "state.db"),
        "task",
        "run",
        "--quiet",
        "--skip-assessment",  # timed: the load itself, like the anchors (assess is a step)
        str(path),
    ]
    env = {**os.environ, "COLUMNS": "200"}
    return run_timed(cmd, env=env)


def ensure_debian(tool: str, package: str) -> str | None:
    """Path of ``tool``; installs the Debian package when missing and we are root."""
    found = shutil.which(tool)
    if found or os.geteuid() != 0:
        return found
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", package],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return shutil.which(tool)


def peak_self_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def report(rows: list[tuple[str, float, float, str]]) -> None:
    """Print (job, anchor s, opendms s, note) as ratios."""
    print(f"\n{'job':<34}{'anchor s':>10}{'opendms s':>11}{'ratio':>8}  note")
    for job, anchor, ours, note in rows:
        print(f"{job:<34}{anchor:>10.2f}{ours:>11.2f}{anchor / ours:>7.2f}x  {note}")
