"""``opendms`` commands. Each maps to one public API call."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from opendms.cli import task_info
from opendms.cli.convert_cmd import convert
from opendms.cli.task_info import JSON_OPTION
from opendms.cli.ui import RichProgress, console, err_console, run_summary, stats_table
from opendms.cli.validate_cmd import validate
from opendms.config import load_task_file, parse_extra_connection_attributes
from opendms.endpoints import check_endpoint
from opendms.endpoints.base import mask
from opendms.engine.cdc import StopEvent
from opendms.engine.task import run_task
from opendms.errors import ConfigError, OpenDMSError, StopRequested, exit_code
from opendms.state import StateStore

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Print opendms errors as one line instead of a traceback; exit 2 for a usage or
    configuration error, 1 when the task, an endpoint or the data failed."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OpenDMSError as exc:
            click.echo(f"error: {exc}", err=True)  # one unwrapped line, scripts can grep it
            sys.exit(exit_code(exc))
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="OPENDMS_STATE",
    help="State store file (default ~/.opendms/state.db; env OPENDMS_STATE).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more detail to stderr.")
@click.version_option(package_name="opendms")
@click.pass_context
def cli(ctx: click.Context, state: Path | None, verbose: bool) -> None:
    """opendms: migrate databases into databases and Parquet/CSV lakes."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = {"state": state}


def _graceful(stop: StopEvent) -> Callable[[int, object], None]:
    """SIGINT/SIGTERM: while changes stream, finish the batch and stop (exit 0);
    during a full load, or on a second signal, interrupt."""

    def handler(signum: int, frame: object) -> None:
        if stop.streaming and not stop.is_set():
            stop.set()
            return
        raise KeyboardInterrupt

    return handler


def store_of(ctx: click.Context) -> StateStore:
    return StateStore(ctx.obj.get("state"))


@cli.group()
def endpoint() -> None:
    """Work with endpoints (connection URLs)."""


@endpoint.command("test")
@click.argument("url")
@click.option("--settings", default="", help="Endpoint settings as k=v;k=v.")
@friendly
def endpoint_test(url: str, settings: str) -> None:
    """Test the connection to URL, like DMS "test connection"."""
    detail = check_endpoint(url, parse_extra_connection_attributes(settings))
    click.echo(f"successful: {mask(url)}: {detail}")


@cli.group()
def task() -> None:
    """Run migration tasks and look at their status."""


@task.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--follow",
    is_flag=True,
    help="CDC tasks: keep applying changes until stopped (Ctrl-C / SIGTERM); "
    "without it a CDC task stops once it has caught up with the source.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="CDC tasks: forget the saved position and start over (new slot, new full load).",
)
@click.option(
    "--skip-assessment", is_flag=True, help="Do not run the premigration assessment first."
)
@click.pass_context
@friendly
def task_run(
    ctx: click.Context, file: Path, quiet: bool, follow: bool, fresh: bool, skip_assessment: bool
) -> None:
    """Run the task defined in FILE (YAML) in the foreground (after a premigration
    assessment: a failed check stops the task before it starts)."""
    spec = load_task_file(file)
    if not skip_assessment:
        _assess_first(spec)
    store = StateStore(spec.state or ctx.obj.get("state"))
    stop = StopEvent()
    signal.signal(signal.SIGTERM, _graceful(stop))  # like Ctrl-C: workers finish their batch
    signal.signal(signal.SIGINT, _graceful(stop))
    enabled = not quiet and err_console.is_terminal
    with RichProgress(enabled) as progress:
        try:
            result = run_task(
                spec, store, progress, stop, follow=follow, fresh=fresh, file=str(file.resolve())
            )
        except StopRequested:  # stopped while waiting to retry a recoverable error
            console.print(f"task {spec.name}: stopped while waiting to retry")
            return
    console.print(stats_table(spec.name, store.tables(spec.name)))
    console.print(run_summary(spec.name, store, result))


FILE_OPTION = click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The task file (default: the one the task last ran from).",
)


def _launch(ctx: click.Context, name: str, file: Path | None, fresh: bool, verb: str) -> None:
    from opendms.cli import control

    store = store_of(ctx)
    path = control.task_file(store, name, file)
    spec = load_task_file(path)
    if spec.name != name:
        raise ConfigError(f"task file {path} defines task {spec.name!r}, not {name!r}")
    control.check_not_running(store, name)
    if verb == "started":
        control.check_first_start(store, name)
    pid, log = control.spawn(StateStore(spec.state or ctx.obj.get("state")), name, path, fresh)
    console.print(f"task {name} {verb} in the background (pid {pid}); log: {log}")


@task.command("start")
@click.argument("name")
@FILE_OPTION
@click.pass_context
@friendly
def task_start(ctx: click.Context, name: str, file: Path | None) -> None:
    """Start task NAME in the background (its first run; see resume and reload)."""
    _launch(ctx, name, file, fresh=False, verb="started")


@task.command("resume")
@click.argument("name")
@FILE_OPTION
@click.pass_context
@friendly
def task_resume(ctx: click.Context, name: str, file: Path | None) -> None:
    """Resume task NAME in the background from its last applied position."""
    _launch(ctx, name, file, fresh=False, verb="resumed")


@task.command("reload")
@click.argument("name")
@FILE_OPTION
@click.pass_context
@friendly
def task_reload(ctx: click.Context, name: str, file: Path | None) -> None:
    """Start task NAME over in the background: new capture position and full load."""
    _launch(ctx, name, file, fresh=True, verb="reloading")


@task.command("stop")
@click.argument("name")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait.")
@click.pass_context
@friendly
def task_stop(ctx: click.Context, name: str, timeout: float) -> None:
    """Stop task NAME: it applies the batch in hand, records its position and exits."""
    from opendms.cli import control

    record = control.stop(store_of(ctx), name, timeout)
    if record is None:
        console.print(f"task {name}: stopped before it started")
    else:
        console.print(f"task {name}: {record.status.value} ({record.stop_reason})")


def _assess_first(spec: Any) -> None:
    from opendms.assess import assess, failed
    from opendms.cli.ui import checks_table

    checks = assess(spec)
    bad = failed(checks)
    if bad:
        err_console.print(checks_table(bad, title=f"Premigration assessment: {spec.name}"))
        raise OpenDMSError(
            f"task {spec.name}: {len(bad)} assessment check(s) failed ("
            + ", ".join(c.id for c in bad)
            + "); fix them or run with --skip-assessment"
        )


@cli.command("assess")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@friendly
def assess_command(file: Path, as_json: bool) -> None:
    """Premigration assessment of the task in FILE: exit 0 when no check failed, 1 otherwise."""
    import json

    from opendms.assess import assess, failed
    from opendms.cli.ui import checks_table

    spec = load_task_file(file)
    checks = assess(spec)
    if as_json:
        click.echo(json.dumps([c.to_json() for c in checks], indent=2))
    else:
        console.print(checks_table(checks, title=f"Premigration assessment: {spec.name}"))
    if failed(checks):
        sys.exit(1)


cli.add_command(convert)
cli.add_command(validate)


@task.command("status")
@click.argument("name", required=False)
@JSON_OPTION
@click.pass_context
@friendly
def task_status(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Show the status of task NAME (or of every task), with what the source retains
    for CDC tasks (replication slot WAL, binlog); warns when that is large."""
    task_info.status(ctx, name, as_json)


@task.command("tables")
@click.argument("name")
@JSON_OPTION
@click.pass_context
@friendly
def task_tables(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show the table statistics of task NAME."""
    task_info.tables(ctx, name, as_json)


@task.command("errors")
@click.argument("name")
@click.option("--table", help="Only this table (schema.table).")
@JSON_OPTION
@click.pass_context
@friendly
def task_errors(ctx: click.Context, name: str, table: str | None, as_json: bool) -> None:
    """List the data errors of task NAME: rows skipped or logged by the error policies,
    with their key and reason."""
    task_info.errors(ctx, name, table, as_json)


@task.command("delete")
@click.argument("name")
@click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The task file, to connect to the source and drop the CDC slot and publication.",
)
@click.pass_context
@friendly
def task_delete(ctx: click.Context, name: str, file: Path | None) -> None:
    """Forget task NAME and its statistics (with --file, also drop its replication slot)."""
    from opendms.cli.control import check_not_running, record_of

    store = store_of(ctx)
    record = record_of(store, name)
    check_not_running(store, name)  # stop it first: its process holds the slot
    if record.migration_type != "full-load":
        known = Path(record.file) if record.file and Path(record.file).is_file() else None
        _drop_replication(name, record.source, file or known)
    store.delete_task(name)
    console.print(f"deleted task {name}")


def _drop_replication(name: str, source: str, file: Path | None) -> None:
    """Drop the CDC capture objects (slot and publication, triggers), which would
    otherwise keep WAL or keep recording changes on the source."""
    from opendms.endpoints import open_capture
    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.postgres.replication import replication_names

    if file is None:
        if source.startswith(("postgresql:", "postgres:")):
            slot, publication = replication_names(name)
            click.echo(
                f"warning: replication slot {slot!r} and publication {publication!r} stay on "
                "the source and keep its WAL, and so do the DDL-capture objects (event "
                "triggers opendms_intercept_ddl/_drop, opendms_ddl_* tables); pass --file "
                f"TASK_FILE to drop them, or run SELECT pg_drop_replication_slot('{slot}'); "
                f"DROP PUBLICATION {publication};",
                err=True,
            )
        elif source.startswith("sqlite:"):
            click.echo(
                "warning: the capture triggers and change table stay in the source database; "
                "pass --file TASK_FILE to drop them",
                err=True,
            )
        return
    spec = load_task_file(file)
    capture = open_capture(EndpointURL.parse(spec.source.url), name, spec.source.settings)
    try:
        capture.drop()
    finally:
        capture.close()


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("opendms-demo"),
    show_default=True,
    help="Where the demo database, lake and copy go.",
)
@click.option(
    "--orders",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Orders to generate.",
)
@click.pass_context
@friendly
def demo(ctx: click.Context, directory: Path, orders: int) -> None:
    """Migrate an embedded retail database to a Parquet lake and to SQLite."""
    from opendms.demo import run_demo

    run_demo(directory, orders, ctx.obj.get("state"))


def main() -> None:
    cli(prog_name="opendms")


if __name__ == "__main__":
    main()
