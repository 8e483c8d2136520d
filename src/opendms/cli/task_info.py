"""Read-only task commands: ``task status``, ``task tables`` and ``task errors``."""

from __future__ import annotations

import json

import click

from opendms.cli.control import reconciled, record_of
from opendms.cli.ui import console, task_detail, task_table
from opendms.errors import ConfigError
from opendms.state import StateStore

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")


def _store(ctx: click.Context) -> StateStore:
    return StateStore(ctx.obj.get("state"))


def _echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _warn(text: str) -> None:
    if text:
        click.echo(f"warning: {text}", err=True)


def status(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Status of task NAME (or of every task), with the source backlog of CDC tasks."""
    from opendms.engine.backlog import task_backlog
    from opendms.state.views import task_view

    store = _store(ctx)
    records = [record_of(store, name)] if name else [reconciled(store, r) for r in store.tasks()]
    views, rows = [], []
    for record in records:
        tables = store.tables(record.name)
        report = task_backlog(record)
        backlog = report.text() if report else ""
        views.append(task_view(record, tables, report.to_json() if report else None))
        rows.append((record, tables, backlog))
        _warn(report.warning if report else "")
    if as_json:
        _echo_json(views[0] if name else views)
    elif name:
        console.print(task_detail(*rows[0]))
    else:
        console.print(task_table(rows))


def tables(ctx: click.Context, name: str, as_json: bool) -> None:
    """Table statistics of task NAME."""
    from opendms.cli.ui import stats_table, table_errors
    from opendms.state.views import table_view

    store = _store(ctx)
    record_of(store, name)
    stats = store.tables(name)
    if as_json:
        _echo_json([table_view(t) for t in stats])
        return
    console.print(stats_table(name, stats))
    for line in table_errors(stats):
        console.print(line, markup=False, highlight=False)


def errors(ctx: click.Context, name: str, table: str | None, as_json: bool) -> None:
    """Data errors of task NAME: rows the error policies skipped, with key and reason."""
    store = _store(ctx)
    record_of(store, name)
    found = [e for e in store.data_errors(name) if table is None or e[0] == table]
    if (
        table is not None
        and not found
        and table not in {f"{t.schema}.{t.name}" for t in store.tables(name)}
    ):
        raise ConfigError(f"task {name!r} has no table {table!r}")
    keys = ("table", "key", "column", "reason")
    if as_json:
        _echo_json([dict(zip(keys, e, strict=True)) for e in found])
        return
    for e in found:
        column = f" column {e[2]}" if e[2] else ""
        click.echo(f"{e[0]} row {e[1]}{column}: {e[3]}")
    click.echo(f"{len(found)} data error(s)", err=True)
