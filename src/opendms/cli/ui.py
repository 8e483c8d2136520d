"""Console output: rich progress bars and tables."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import click
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
from opendms.state.views import progress

if TYPE_CHECKING:
    from opendms.service import RunResult


F = TypeVar("F", bound=Callable[..., Any])


def state_path(ctx: click.Context) -> Path:
    """The state file of ``--state`` (or $OPENDMS_STATE, or the default)."""
    from opendms.state.store import default_path

    state = (ctx.obj or {}).get("state")
    return Path(state) if state else default_path()


def errors_as_lines(func: F) -> F:
    """An opendms error is one ``error: ...`` line on stderr and its exit code."""
    from opendms.errors import OpenDMSError, exit_code

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OpenDMSError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_code(exc))

    return wrapper  # type: ignore[return-value]


def named_endpoints(given: tuple[str, ...]) -> dict[str, str]:
    """``--endpoint NAME=URL`` options as ``{NAME: URL}``."""
    from opendms.errors import ConfigError

    found: dict[str, str] = {}
    for item in given:
        name, sep, url = item.partition("=")
        if not sep or not name or "://" not in url:
            raise ConfigError(f"--endpoint {item.split('://')[0]!r}...: expected NAME=URL")
        found[name] = url
    return found


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
    percent = f"{progress(task, tables)}%"
    if task.stop_reason == "FULL_LOAD_ONLY_FINISHED":
        return f"{percent} (Load complete)"
    return f"{percent} ({task.phase})" if task.phase else percent


def _latency(task: TaskRecord) -> str:
    m = task.metrics
    if not m:
        return ""
    return (
        f"source {m.get('source_latency_s', 0):.1f} s, target "
        f"{m.get('target_latency_s', 0):.1f} s, {m.get('throughput_rows_s', 0):,.0f} rows/s, "
        f"{m.get('incoming_changes', 0):,.0f} incoming"
    )


def task_table(tasks: list[tuple[TaskRecord, list[TableStats], str]]) -> RichTable:
    """Every task, one line each, readable at 80 columns (details: ``task status NAME``)."""
    table = RichTable(title="Database migration tasks")
    backlog = any(b for _, _, b in tasks)
    heads = ["Identifier", "Status", "Progress", "Type"]
    heads += ["Source backlog"] if backlog else []
    for col in [*heads, "Stop reason"]:
        table.add_column(col, overflow="fold", no_wrap=col in ("Status", "Progress", "Type"))
    for task, tables, text in tasks:
        running = task.status.value in ("starting", "running")
        row = [task.name, task.status.value, f"{progress(task, tables)}%", task.migration_type]
        if running and task.phase:
            row[2] += f" {task.phase}"
        row += [text] if backlog else []
        table.add_row(*row, task.stop_reason)
    return table


def task_detail(task: TaskRecord, tables: list[TableStats], backlog: str) -> RichTable:
    """One task as label/value lines."""
    table = RichTable(title=f"Task {task.name}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    lines = [
        ("Status", task.status.value + (f" ({task.stop_reason})" if task.stop_reason else "")),
        ("Progress", _progress_text(task, tables)),
        ("Type", task.migration_type),
        ("Source", task.source),
        ("Target", task.target),
        ("Started", task.started_at or ""),
        ("Stopped", task.stopped_at or ""),
        ("Running as", f"pid {task.pid}" if task.pid else ""),
        ("Applied up to", task.position),
        ("CDC", _latency(task)),
        ("Source backlog", backlog),
    ]
    for label, value in lines:
        if value:
            table.add_row(label, value)
    return table


def _seconds(start: str | None, end: str | None) -> str:
    if not start or not end:
        return ""
    took = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return f"{took.total_seconds():.1f}"


def stats_table(name: str, tables: list[TableStats]) -> RichTable:
    """Table statistics, readable at 80 columns; errors are listed under the table
    (:func:`table_errors`)."""
    table = RichTable(title=f"Table statistics: {name}")
    cdc = any(t.inserts or t.updates or t.deletes or t.ddls for t in tables)
    heads = ["Table", "State", "Loaded", "Errors", "Secs"]
    heads += ["Ins", "Upd", "Del", "DDL"] if cdc else []
    for col in heads:
        numeric = col not in ("Table", "State")
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
        table.add_row(*row)
    return table


def run_summary(result: RunResult) -> str:
    """The last line of ``task run``: how it ended, rows loaded, changes applied."""
    record, load = result.record, result.load
    parts = [f"task {record.name}: {record.status.value}"]
    if record.stop_reason:
        parts[0] += f" ({record.stop_reason})"
    if load.tables:
        parts.append(f"full load {load.tables} tables, {load.rows:,} rows")
    if record.migration_type != "full-load":
        stats = result.tables
        counts = [sum(getattr(t, op) for t in stats) for op in ("inserts", "updates", "deletes")]
        parts.append(
            "changes applied so far: {:,} inserts, {:,} updates, {:,} deletes".format(*counts)
        )
    return "; ".join(parts)


def table_errors(tables: list[TableStats]) -> list[str]:
    """``schema.table: error`` for every table with one."""
    return [
        f"{t.schema}.{t.name}: {t.error}" if t.schema else f"{t.name}: {t.error}"
        for t in tables
        if t.error
    ]


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
