"""Helpers shared by the benchmarks: timing, child RSS, opendms runs, tool installs,
waits that fail fast when the task they wait for has failed, and the apply paths."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from opendms.state import StateStore, TaskStatus
from opendms.state.store import TableState

BIN = Path(sys.executable).parent


class BenchError(SystemExit):
    """Ends a benchmark with one ``error: ...`` line on stderr and exit status 1."""

    def __init__(self, message: str) -> None:
        super().__init__(f"error: {message}")


def smoke_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny data, seconds: checks that the benchmark runs (the test suite runs it); "
        "its figures mean nothing",
    )


def smoke_sizes(args: argparse.Namespace, **sizes: Any) -> None:
    """With ``--smoke``, replace the sizes in ``args`` by ``sizes``."""
    if args.smoke:
        for name, value in sizes.items():
            setattr(args, name, value)


def run_timed(
    args: Sequence[str] | str,
    shell: bool = False,
    env: dict[str, str] | None = None,
    stderr: Any = None,
) -> tuple[float, int]:
    """Run a command; returns (seconds, peak RSS of it and its children in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, shell=shell, env=env, stderr=stderr)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"command failed (exit {os.waitstatus_to_exitcode(status)}): {args}")
    return took, usage.ru_maxrss // 1024


def opendms_task(tmp: Path, name: str, spec: dict[str, Any]) -> tuple[float, int]:
    """Run one opendms task in a child process (no progress bars, its log in
    ``<name>.log``); prints the load path of each table; (seconds, peak RSS MB)."""
    path, log = tmp / f"{name}.yaml", tmp / f"{name}.log"
    path.write_text(yaml.safe_dump({"name": name, **spec}))
    cmd = [
        str(BIN / "opendms"),
        "-v",
        "--state",
        str(tmp / "state.db"),
        "task",
        "run",
        "--quiet",
        "--skip-assessment",  # timed: the load itself, like the anchors (assess is a step)
        str(path),
    ]
    env = {**os.environ, "COLUMNS": "200"}
    with log.open("wb") as out:
        try:
            took = run_timed(cmd, env=env, stderr=out)
        except BenchError:
            raise BenchError(f"opendms task {name} failed: {log_error(log)}") from None
    paths = {}  # table -> path, from "INFO opendms.fullload: table T: PATH"
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("INFO opendms.fullload: table "):
            table, _, how = line.removeprefix("INFO opendms.fullload: table ").partition(": ")
            paths[table] = how
    print(f"{name}: load path: " + ", ".join(f"{t} {h}" for t, h in paths.items()))
    return took


def log_error(log: Path) -> str:
    """A task's ``error: ...`` line from its log, or the log's last lines."""
    lines = log.read_text(errors="replace").splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    return errors[-1] if errors else " | ".join(lines[-5:])


def ensure_debian(tool: str, package: str, install: bool = True) -> str | None:
    """Path of ``tool``; installs the Debian package when missing, ``install`` and root."""
    found = shutil.which(tool)
    if found or os.geteuid() != 0 or not install:
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


def wait_until(
    what: str, done: Callable[[], Any], limit: float, *tasks: TaskRun, every: float = 0.05
) -> float:
    """Seconds until ``done()`` is true; fails at once when one of ``tasks`` has failed,
    and after ``limit`` seconds naming ``what``."""
    start = time.perf_counter()
    while True:
        for task in tasks:
            task.check()
        if done():
            return time.perf_counter() - start
        if time.perf_counter() - start > limit:
            raise BenchError(f"timed out after {limit:.0f} s waiting for {what}")
        time.sleep(every)


class TaskRun:
    """``opendms -v task run --follow`` in a child process, its log in ``<name>.log``.

    :meth:`check` fails the benchmark at once (with the task's error) when the process
    has ended or the task or one of its tables has failed, so no wait outlives a dead task.
    """

    def __init__(self, tmp: Path, name: str, spec: dict[str, Any], follow: bool = True) -> None:
        self.name, self.tmp = name, tmp
        self.state, self.log = tmp / f"{name}.db", tmp / f"{name}.log"
        task = tmp / f"{name}.yaml"
        task.write_text(yaml.safe_dump({"name": name, **spec}))
        cmd = [str(BIN / "opendms"), "-v", "--state", str(self.state), "task", "run", "--quiet"]
        cmd += ["--follow"] if follow else []
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([*cmd, str(task)], stdout=log, stderr=log)
        self.store: StateStore | None = None
        self.checked = 0.0

    def __enter__(self) -> TaskRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM (finish the batch, exit), SIGKILL after a minute."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.store is not None:
            self.store.close()
            self.store = None

    def record(self) -> Any:
        """The task's state record (None before the task wrote one)."""
        if self.store is None and self.state.exists():
            self.store = StateStore(self.state)
        return self.store.task(self.name) if self.store is not None else None

    def check(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise BenchError(f"opendms task {self.name} ended (exit {code}): {self.error()}")
        if time.monotonic() - self.checked < 1.0:
            return  # the state store at most once a second
        self.checked = time.monotonic()
        record = self.record()
        if record is not None and record.status is TaskStatus.FAILED:
            raise BenchError(f"opendms task {self.name} failed: {record.stop_reason}")
        if self.store is not None:
            for table in self.store.tables(self.name):
                if table.state is TableState.ERROR:
                    raise BenchError(f"opendms task {self.name}: table {table.name} failed")

    def error(self) -> str:
        return log_error(self.log)

    def streaming(self) -> bool:
        """The task applies live changes (past its full load and cached changes)."""
        record = self.record()
        return record is not None and record.phase == "ongoing replication"

    def paths(self) -> dict[str, float]:
        """The applier's path counters so far (``apply_*`` metrics; empty for lakes)."""
        record = self.record()
        metrics = record.metrics if record is not None else {}
        return {k.removeprefix("apply_"): v for k, v in metrics.items() if k.startswith("apply_")}

    def paths_after(self, before: dict[str, float], limit: float = 10.0) -> dict[str, float]:
        """The counters once they moved past ``before`` and settled (metrics are written
        right after each batch commits), minus ``before``."""
        if "batches" not in before:
            return {}
        wait_until(f"task {self.name}'s apply metrics", lambda: self._moved(before), limit, self)
        time.sleep(0.3)
        return {k: v - before.get(k, 0.0) for k, v in self.paths().items()}

    def _moved(self, before: dict[str, float]) -> bool:
        return self.paths().get("batches", 0.0) > before["batches"]

    def log_size(self) -> int:
        return self.log.stat().st_size

    def applied_lines(self, since: int) -> list[str]:
        """The CDC loop's per-batch lines logged after byte ``since``."""
        with self.log.open("rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return [line for line in text.splitlines() if "opendms.cdc: applied" in line]


def describe_paths(paths: dict[str, float]) -> str:
    """One line: how the batches of a measured step were applied."""
    if not paths:
        return "apply paths: not counted for this target"
    n = {k: int(v) for k, v in paths.items() if k != "seconds"}
    return (
        f"apply paths: {n['batches']} batches, {paths['seconds']:.2f} s applying; "
        f"staged COPY+merge {n['staged_runs']} runs ({n['staged_rows']:,} changes), "
        f"statements {n['statement_runs']} runs ({n['statement_rows']:,}), "
        f"one by one {n['one_by_one']:,} (after {n['redone']} refused batches)"
    )
