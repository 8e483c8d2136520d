"""Console output: rich progress bars and tables."""

from __future__ import annotations

import threading
from datetime import datetime
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table as RichTable

from opendms.state import TableStats, TaskRecord


def _console(stderr: bool) -> Console:
    """Rich console; off a terminal (logs, CI, pipes) lines are not wrapped at 80 columns."""
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=200)


console = _console(False)
err_console = _console(True)


class RowsPerSecond(TextColumn):
    """Rows per second of one bar."""

    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[no-untyped-def]
        speed = task.finished_speed or task.speed
        return f"{speed:,.0f} rows/s" if speed else ""


class RichProgress:
    """Implements the engine's Progress protocol with one bar per table."""

    def __init__(self, enabled: bool = True) -> None:
        self.bars = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            MofNCompleteColumn(),
            RowsPerSecond(),
            TimeElapsedColumn(),
            console=err_console,
            disable=not enabled,
        )
        self.ids: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.bars.stop()

    def table_started(self, name: str, estimated_rows: int) -> None:
        with self.lock:
            self.ids[name] = self.bars.add_task(name, total=max(estimated_rows, 1))

    def advance(self, name: str, rows: int) -> None:
        with self.lock:
            bar = self.ids.get(name)
            if bar is None:
                return
            done = self.bars.tasks[self.bars.task_ids.index(bar)].completed + rows
            total = self.bars.tasks[self.bars.task_ids.index(bar)].total or 1
            self.bars.update(bar, completed=done, total=max(total, done))

    def table_done(self, name: str, ok: bool) -> None:
        with self.lock:
            bar = self.ids.get(name)
            if bar is not None:
                done = self.bars.tasks[self.bars.task_ids.index(bar)].completed
                self.bars.update(bar, total=max(done, 1), completed=max(done, 1) if ok else done)


def _progress_text(task: TaskRecord, tables: list[TableStats]) -> str:
    if not tables:
        return "0%"
    if task.stop_reason == "FULL_LOAD_ONLY_FINISHED":
        return "100% (Load complete)"
    done = sum(1 for t in tables if t.state.value in ("Table completed", "Table error"))
    percent = f"{100 * done // len(tables)}%"
    return f"{percent} ({task.phase})" if task.phase else percent


def _latency(task: TaskRecord) -> str:
    m = task.metrics
    if not m:
        return ""
    text = (
        f"src {m.get('source_latency_s', 0):.1f}s / tgt {m.get('target_latency_s', 0):.1f}s, "
        f"{m.get('throughput_rows_s', 0):,.0f} rows/s, {m.get('incoming_changes', 0):,.0f} incoming"
    )
    lag = m.get("source_lag_bytes", 0)
    return f"{text}, slot lag {lag / 1024:,.0f} KiB" if lag else text


def task_table(tasks: list[tuple[TaskRecord, list[TableStats]]]) -> RichTable:
    table = RichTable(title="Database migration tasks")
    columns = ("Identifier", "Status", "Progress", "Type", "Source", "Target", "CDC", "Stop reason")
    for col in columns:
        table.add_column(col, overflow="fold")
    for task, tables in tasks:
        table.add_row(
            task.name,
            task.status.value,
            _progress_text(task, tables),
            task.migration_type,
            task.source,
            task.target,
            _latency(task),
            task.stop_reason,
        )
    return table


def _seconds(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    took = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return f"{took.total_seconds():.1f}"


def stats_table(name: str, tables: list[TableStats]) -> RichTable:
    table = RichTable(title=f"Table statistics: {name}")
    cdc = any(t.inserts or t.updates or t.deletes or t.ddls for t in tables)
    heads = ["Table", "State", "Full load rows", "Errors", "Seconds"]
    heads += ["Inserts", "Updates", "Deletes", "Ddls", "Last change"] if cdc else []
    for col in [*heads, "Error"]:
        numeric = col not in ("Table", "State", "Last change", "Error")
        table.add_column(col, justify="right" if numeric else "left", overflow="fold")
    for t in tables:
        row = [
            f"{t.schema}.{t.name}" if t.schema else t.name,
            t.state.value,
            f"{t.full_load_rows:,}",
            f"{t.error_rows:,}",
            _seconds(t.started_at, t.ended_at),
        ]
        if cdc:
            row += [f"{t.inserts:,}", f"{t.updates:,}", f"{t.deletes:,}", f"{t.ddls:,}"]
            row.append((t.last_change_at or "")[:19])
        table.add_row(*row, t.error[:200])
    return table


_STATUS_STYLE = {"passed": "green", "warning": "yellow", "failed": "bold red", "skipped": "dim"}


def checks_table(checks: list[Any], title: str) -> RichTable:
    """Assessment checks: id, status, what was found, the objects, how to fix it."""
    table = RichTable(title=title)
    for col in ("Check", "Status", "Finding", "Objects", "Remediation"):
        table.add_column(col, overflow="fold")
    for check in checks:
        status = check.status.value
        objects = ", ".join(check.objects[:5]) + (" …" if len(check.objects) > 5 else "")
        table.add_row(
            check.id,
            f"[{_STATUS_STYLE[status]}]{status}[/]",
            check.message,
            objects,
            check.remediation,
        )
    return table
