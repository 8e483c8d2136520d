"""``opendms handlers``: a task's handler functions (status, dead letters, replay), over
:mod:`opendms.handlers.admin`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table as RichTable

from opendms.cli.ui import console, errors_as_lines, state_path
from opendms.handlers import admin

F = TypeVar("F", bound=Callable[..., Any])
EXIT_STILL_DEAD = 1

FILE_OPTION = click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Take the handlers from this task file (default: as the task last ran).",
)
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")


@click.group("handlers")
def handlers() -> None:
    """A task's handler functions: status, dead letters, replay."""


@handlers.command("status")
@click.argument("task")
@FILE_OPTION
@JSON_OPTION
@click.pass_context
@errors_as_lines
def status(ctx: click.Context, task: str, file: Path | None, as_json: bool) -> None:
    """Each handler of TASK: its checkpoint, records still to deliver (lag) and dead
    letters."""
    found = admin.status(state_path(ctx), task, file)
    if as_json:
        click.echo(json.dumps([asdict(s) for s in found], indent=2))
        return
    table = RichTable(title=f"Handlers of {task}")
    for column in ("handler", "function", "delivered", "checkpoint", "pending", "lag s"):
        table.add_column(column)
    table.add_column("dead letters")
    table.add_column("last error")
    for s in found:
        lag = "" if s.oldest_pending_s is None else f"{s.oldest_pending_s:.1f}"
        point = s.checkpoint
        table.add_row(
            s.name,
            s.function,
            str(point.delivered),
            point.last_record or "-",
            str(s.pending),
            lag,
            str(s.dead_letters),
            point.last_error,
        )
    console.print(table)


@handlers.command("dead-letters")
@click.argument("task")
@click.option("--handler", "name", help="Only this handler's.")
@FILE_OPTION
@JSON_OPTION
@click.pass_context
@errors_as_lines
def dead_letters(
    ctx: click.Context, task: str, name: str | None, file: Path | None, as_json: bool
) -> None:
    """List the dead letters of TASK's handlers: record id, table, attempts, error."""
    found = admin.dead_letters(state_path(ctx), task, name, file)
    if as_json:
        rows = [
            {"handler": h, **asdict(d.row), "error": d.error, "attempts": d.attempts}
            | {"failed_at": d.failed_at}
            for h, d in found
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for handler, letter in found:
        row = letter.row
        click.echo(
            f"{handler} {row.record_id} {row.schema}.{row.table} "
            f"({letter.attempts} attempts, {letter.failed_at}): {letter.error}"
        )
    click.echo(f"{len(found)} dead letter(s)", err=True)


@handlers.command("replay")
@click.argument("task")
@click.option("--handler", "name", help="Only this handler's dead letters.")
@FILE_OPTION
@click.pass_context
@errors_as_lines
def replay(ctx: click.Context, task: str, name: str | None, file: Path | None) -> None:
    """Deliver the dead letters of TASK's handlers again (exit 1 when some still fail)."""
    results = admin.replay(state_path(ctx), task, name, file)
    for r in results:
        text = f"handler {r.name}: {r.delivered} delivered, {r.still_dead} still dead letters"
        click.echo(text + (f" ({r.error})" if r.error else ""))
    if any(r.still_dead for r in results):
        sys.exit(EXIT_STILL_DEAD)
