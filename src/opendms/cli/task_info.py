"""Read-only task commands: ``task status``, ``task tables`` and ``task errors`` (the
task service reads, this module renders)."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from opendms.cli.ui import console, task_detail, task_table
from opendms.service import TaskService

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _warn(text: str) -> None:
    if text:
        click.echo(f"warning: {text}", err=True)


def status(service: TaskService, name: str | None, as_json: bool) -> None:
    """Status of task NAME (or of every task), with the source backlog of CDC tasks."""
    from opendms.state.views import task_view

    infos = [service.status(name)] if name else service.statuses()
    views, rows = [], []
    for info in infos:
        report = info.backlog
        views.append(task_view(info.record, info.tables, report.to_json() if report else None))
        rows.append((info.record, info.tables, report.text() if report else ""))
        _warn(report.warning if report else "")
    if as_json:
        _echo_json(views[0] if name else views)
    elif name:
        console.print(task_detail(*rows[0]))
    else:
        console.print(task_table(rows))


def tables(service: TaskService, name: str, as_json: bool) -> None:
    """Table statistics of task NAME."""
    from opendms.cli.ui import stats_table, table_errors
    from opendms.state.views import table_view

    stats = service.tables(name)
    if as_json:
        _echo_json([table_view(t) for t in stats])
        return
    console.print(stats_table(name, stats))
    for line in table_errors(stats):
        console.print(line, markup=False, highlight=False)


def errors(service: TaskService, name: str, table: str | None, as_json: bool) -> None:
    """Data errors of task NAME: rows the error policies skipped, with key and reason."""
    found = service.errors(name, table=table)
    if as_json:
        _echo_json([asdict(e) for e in found])
        return
    for e in found:
        column = f" column {e.column}" if e.column else ""
        click.echo(f"{e.table} row {e.key}{column}: {e.reason}")
    click.echo(f"{len(found)} data error(s)", err=True)
