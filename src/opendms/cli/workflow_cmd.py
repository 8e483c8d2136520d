"""``opendms workflow``: Amazon States Language state machines (docs/workflows.md).

``validate`` checks a definition; ``run`` executes it in this process, keeping the
execution in the state store (``--state``), and prints its output as JSON
(``--history``: every event as a JSON line on stderr); ``resume`` goes on with an
execution whose process was killed, replaying what it had finished; ``list``,
``describe`` and ``history`` read the store. ``python:`` resources are imported with the
current directory on the path (a resumed execution: the directory it was started in)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table as RichTable

from opendms.cli.ui import console, errors_as_lines, named_endpoints, state_path
from opendms.errors import ConfigError
from opendms.workflows.actions import Actions
from opendms.workflows.definition import load, parse
from opendms.workflows.run import Execution, StatesError
from opendms.workflows.store import ExecutionRecord, WorkflowStore

EXIT_FAILED = 1
ENDPOINTS_ENV = "OPENDMS_ENDPOINTS"
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
ENDPOINT_OPTION = click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="NAME=URL",
    help="An endpoint or lake the opendms: resources name (repeatable; not stored).",
)


@click.group("workflow")
def workflow() -> None:
    """State machines in the Amazon States Language."""


@workflow.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@errors_as_lines
def workflow_validate(file: Path) -> None:
    """Check a state machine definition (JSON and ASL)."""
    machine = load(file)
    click.echo(f"{file}: valid, {len(machine.states)} state(s), starting at {machine.start_at}")


@workflow.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--input", "given", default="{}", help="The input: JSON text, or @FILE.")
@click.option("--name", help="The execution's name (default: FILE's stem and a unique id).")
@click.option("--history", is_flag=True, help="Print each event as a JSON line on stderr.")
@ENDPOINT_OPTION
@click.pass_context
@errors_as_lines
def workflow_run(
    ctx: click.Context,
    file: Path,
    given: str,
    name: str | None,
    history: bool,
    endpoints: tuple[str, ...],
) -> None:
    """Run a state machine and print its output; the execution is kept in the state
    store, so `workflow resume NAME` can finish it if this process is killed."""
    machine = load(file)
    data = _input(given)
    actions = _actions(ctx, endpoints)
    name = name or f"{file.stem}-{uuid.uuid4().hex[:12]}"
    store = WorkflowStore(state_path(ctx))
    store.create(name, file.stem, json.dumps(machine.source), data, os.getcwd())
    click.echo(f"execution {name}", err=True)
    _execute(store, store.execution(name), actions, history=history, resumed=False)


@workflow.command("resume")
@click.argument("name")
@click.option("--history", is_flag=True, help="Print each new event as a JSON line on stderr.")
@ENDPOINT_OPTION
@click.pass_context
@errors_as_lines
def workflow_resume(
    ctx: click.Context, name: str, history: bool, endpoints: tuple[str, ...]
) -> None:
    """Go on with an execution whose process stopped (killed, crashed): finished states
    and Task attempts are replayed from the store, not run again (give the --endpoint
    options again: they are not stored)."""
    actions = _actions(ctx, endpoints)
    store = WorkflowStore(state_path(ctx))
    record = store.take_over(name)
    started = bool(store.events(name))  # else: a server handed a new execution over
    _execute(store, record, actions, history=history, resumed=started)


def _actions(ctx: click.Context, given: tuple[str, ...]) -> Actions:
    """The resources, with the endpoints of $OPENDMS_ENDPOINTS (a JSON object of names
    and URLs: how the server passes its endpoints on) and of --endpoint."""
    try:
        endpoints: dict[str, str] = json.loads(os.environ.get(ENDPOINTS_ENV) or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"${ENDPOINTS_ENV} is not a JSON object: {exc.msg}") from None
    return Actions({**endpoints, **named_endpoints(given)}, state_path(ctx))


def _execute(
    store: WorkflowStore,
    record: ExecutionRecord,
    actions: Actions,
    *,
    history: bool,
    resumed: bool,
) -> None:
    machine = parse(record.definition, where=f"execution {record.name}")
    sys.path.insert(0, record.cwd or os.getcwd())  # python: resources, as handlers'
    events = _recorder(store, record.name, history)
    execution = Execution(
        machine, actions, on_event=events, name=record.name, journal=store.journal(record.name)
    )
    try:
        out = execution.run(record.input, resumed=resumed)
    except StatesError as exc:
        store.finish(record.name, error=exc.error, cause=exc.cause)
        click.echo(f"error: the execution failed: {exc.error}: {exc.cause}", err=True)
        sys.exit(EXIT_FAILED)
    store.finish(record.name, output=out)
    click.echo(json.dumps(out, indent=2, default=str))


def _recorder(store: WorkflowStore, name: str, history: bool) -> Callable[[dict[str, Any]], None]:
    def record(event: dict[str, Any]) -> None:
        kept = store.add_event(name, event)
        if history:
            click.echo(json.dumps(kept, default=str), err=True)

    return record


@workflow.command("list")
@JSON_OPTION
@click.pass_context
@errors_as_lines
def workflow_list(ctx: click.Context, as_json: bool) -> None:
    """The executions in the state store, oldest first."""
    found = WorkflowStore(state_path(ctx)).executions()
    if as_json:
        click.echo(json.dumps([_brief(r) for r in found], indent=2))
        return
    table = RichTable(title="Workflow executions")
    for column in ("name", "state machine", "status", "started", "stopped"):
        table.add_column(column)
    for r in found:
        status = f"{r.status} (interrupted)" if r.interrupted else r.status
        table.add_row(r.name, r.machine, status, r.started_at, r.stopped_at or "")
    console.print(table)


def _brief(record: ExecutionRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.summary().items()
        if key not in ("input", "output", "cause")
    }


@workflow.command("describe")
@click.argument("name")
@click.pass_context
@errors_as_lines
def workflow_describe(ctx: click.Context, name: str) -> None:
    """One execution: status, input, output or error, times (JSON)."""
    record = WorkflowStore(state_path(ctx)).execution(name)
    click.echo(json.dumps(record.summary(), indent=2, default=str))


@workflow.command("history")
@click.argument("name")
@JSON_OPTION
@click.pass_context
@errors_as_lines
def workflow_history(ctx: click.Context, name: str, as_json: bool) -> None:
    """One execution's events, in order: states entered and exited, failures, retries."""
    store = WorkflowStore(state_path(ctx))
    store.execution(name)  # an unknown name is an error, not an empty history
    events = store.events(name)
    if as_json:
        click.echo(json.dumps(events, indent=2, default=str))
        return
    table = RichTable(title=f"History of {name}")
    for column in ("id", "time", "event", "state", "detail"):
        table.add_column(column)
    for event in events:
        detail = {k: v for k, v in event.items() if k not in ("id", "timestamp", "type", "state")}
        table.add_row(
            str(event["id"]),
            event["timestamp"],
            event["type"],
            event.get("state", ""),
            json.dumps(detail, default=str)[:120],
        )
    console.print(table)


def _input(given: str) -> Any:
    where = "--input"
    text = given
    if given.startswith("@"):
        where = given[1:]
        try:
            text = Path(where).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the input: {exc}", where=where) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", where=where
        ) from None
