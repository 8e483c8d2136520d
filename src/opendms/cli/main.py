"""``opendms`` commands. Each maps to one public API call: the task commands to
:class:`~opendms.service.TaskService` (parse the arguments, call it, render the result)."""

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
from opendms.cli.handlers_cmd import handlers
from opendms.cli.query_cmd import query
from opendms.cli.serve_cmd import serve
from opendms.cli.task_info import JSON_OPTION
from opendms.cli.ui import RichProgress, console, err_console, run_summary, stats_table
from opendms.cli.validate_cmd import validate
from opendms.cli.workflow_cmd import workflow
from opendms.config import TaskSpec, parse_extra_connection_attributes
from opendms.endpoints import check_endpoint
from opendms.endpoints.base import mask
from opendms.engine.cdcloop import StopEvent
from opendms.errors import OpenDMSError, StopRequested, exit_code
from opendms.service import AssessmentFailedError, Launched, TaskService
from opendms.service.logs import task_log

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


def service_of(ctx: click.Context) -> TaskService:
    """The task service of ``--state`` (its store is opened when first used)."""
    return TaskService(ctx.obj.get("state"))


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
    service = service_of(ctx)
    spec = service.load(file)
    if not skip_assessment:  # before the signal handlers and progress bars, as ever
        _assess_first(service, spec)
    stop = StopEvent()
    signal.signal(signal.SIGTERM, _graceful(stop))  # like Ctrl-C: workers finish their batch
    signal.signal(signal.SIGINT, _graceful(stop))
    enabled = not quiet and err_console.is_terminal
    with RichProgress(enabled) as progress, task_log(service.state_of(spec), spec):
        try:
            result = service.run(
                spec,
                file=file,
                progress=progress,
                stop=stop,
                follow=follow,
                fresh=fresh,
                assess=False,
            )
        except StopRequested:  # stopped while waiting to retry a recoverable error
            console.print(f"task {spec.name}: stopped while waiting to retry")
            return
    console.print(stats_table(spec.name, result.tables))
    console.print(run_summary(result))


FILE_OPTION = click.option(
    "--file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The task file (default: the one the task last ran from).",
)


def _launched(launched: Launched, verb: str) -> None:
    console.print(
        f"task {launched.name} {verb} in the background (pid {launched.pid}); log: {launched.log}"
    )


@task.command("start")
@click.argument("name")
@FILE_OPTION
@click.pass_context
@friendly
def task_start(ctx: click.Context, name: str, file: Path | None) -> None:
    """Start task NAME in the background (its first run; see resume and reload)."""
    _launched(service_of(ctx).start(name, file=file), "started")


@task.command("resume")
@click.argument("name")
@FILE_OPTION
@click.pass_context
@friendly
def task_resume(ctx: click.Context, name: str, file: Path | None) -> None:
    """Resume task NAME in the background from its last applied position."""
    _launched(service_of(ctx).resume(name, file=file), "resumed")


@task.command("reload")
@click.argument("name")
@FILE_OPTION
@click.pass_context
@friendly
def task_reload(ctx: click.Context, name: str, file: Path | None) -> None:
    """Start task NAME over in the background: new capture position and full load."""
    _launched(service_of(ctx).reload(name, file=file), "reloading")


@task.command("stop")
@click.argument("name")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait.")
@click.pass_context
@friendly
def task_stop(ctx: click.Context, name: str, timeout: float) -> None:
    """Stop task NAME: it applies the batch in hand, records its position and exits."""
    record = service_of(ctx).stop(name, timeout=timeout)
    if record is None:
        console.print(f"task {name}: stopped before it started")
    else:
        console.print(f"task {name}: {record.status.value} ({record.stop_reason})")


def _assess_first(service: TaskService, spec: TaskSpec) -> None:
    """The assessment before a run; its failed checks shown before the error."""
    from opendms.cli.ui import checks_table

    try:
        service.assess(spec)
    except AssessmentFailedError as exc:
        err_console.print(checks_table(exc.checks, title=f"Premigration assessment: {spec.name}"))
        raise


@cli.command("assess")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@friendly
def assess_command(file: Path, as_json: bool) -> None:
    """Premigration assessment of the task in FILE: exit 0 when no check failed, 1 otherwise."""
    import json

    from opendms.assess import assess, failed
    from opendms.cli.ui import checks_table

    spec = TaskService.load(file)
    checks = assess(spec)
    if as_json:
        click.echo(json.dumps([c.to_json() for c in checks], indent=2))
    else:
        console.print(checks_table(checks, title=f"Premigration assessment: {spec.name}"))
    if failed(checks):
        sys.exit(1)


cli.add_command(convert)
cli.add_command(validate)
cli.add_command(handlers)
cli.add_command(workflow)
cli.add_command(query)


@task.command("status")
@click.argument("name", required=False)
@JSON_OPTION
@click.pass_context
@friendly
def task_status(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Show the status of task NAME (or of every task), with what the source retains
    for CDC tasks (replication slot WAL, binlog); warns when that is large."""
    task_info.status(service_of(ctx), name, as_json)


@task.command("tables")
@click.argument("name")
@JSON_OPTION
@click.pass_context
@friendly
def task_tables(ctx: click.Context, name: str, as_json: bool) -> None:
    """Show the table statistics of task NAME."""
    task_info.tables(service_of(ctx), name, as_json)


@task.command("errors")
@click.argument("name")
@click.option("--table", help="Only this table (schema.table).")
@JSON_OPTION
@click.pass_context
@friendly
def task_errors(ctx: click.Context, name: str, table: str | None, as_json: bool) -> None:
    """List the data errors of task NAME: rows skipped or logged by the error policies,
    with their key and reason."""
    task_info.errors(service_of(ctx), name, table, as_json)


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
    deleted = service_of(ctx).delete(name, file=file)
    for warning in deleted.warnings:
        click.echo(f"warning: {warning}", err=True)
    console.print(f"deleted task {name}")


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
    from opendms.cli.demo_cmd import run_demo

    run_demo(directory, orders, service_of(ctx))


cli.add_command(serve)


def main() -> None:
    _stack_dumps_on_usr1()
    cli(prog_name="opendms")


def _stack_dumps_on_usr1() -> None:
    """``kill -USR1 <pid>`` prints every thread's stack to stderr: what a task that seems
    stuck is doing (the fault tests ask for it before they give up on a task)."""
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)


if __name__ == "__main__":
    main()
