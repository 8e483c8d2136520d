"""``opendms workflow``: Amazon States Language state machines (docs/workflows.md).

``validate`` checks a definition; ``run`` executes it in this process and prints its
output as JSON (``--history``: every event as a JSON line on stderr); ``python:``
resources are imported with the current directory on the path. Executions are not
yet kept in the state store: a run that is killed starts again from the beginning."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from opendms.cli.ui import errors_as_lines
from opendms.errors import ConfigError
from opendms.workflows.definition import load
from opendms.workflows.run import Execution, StatesError

EXIT_FAILED = 1


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
@click.option("--history", is_flag=True, help="Print each event as a JSON line on stderr.")
@errors_as_lines
def workflow_run(file: Path, given: str, history: bool) -> None:
    """Run a state machine once and print its output."""
    machine = load(file)
    data = _input(given)
    sys.path.insert(0, os.getcwd())  # python: resources, as handler functions, from here
    events = _print_event if history else None
    try:
        out = Execution(machine, on_event=events, name=file.stem).run(data)
    except StatesError as exc:
        click.echo(f"error: the execution failed: {exc.error}: {exc.cause}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(json.dumps(out, indent=2, default=str))


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


def _print_event(event: dict[str, Any]) -> None:
    click.echo(json.dumps(event, default=str), err=True)
