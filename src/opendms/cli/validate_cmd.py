"""``opendms validate``: compare a task's target with its source, row by row."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table as RichTable

from opendms.errors import OpenDMSError

if TYPE_CHECKING:
    from opendms.validate import ValidationResult

EXIT_MISMATCH = 1
EXIT_ERROR = 2


@click.command("validate")
@click.argument("task_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="SCHEMA.TABLE",
    help="Validate only this table (repeatable; source or target name).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every failure (keys and values of both sides) to this JSON file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--checksums/--no-checksums",
    default=None,
    help="Compare key-range checksums computed in the databases first and read only the "
    "ranges that differ (PostgreSQL/MySQL, integer keys); default: "
    "ValidationSettings.InDatabaseChecksums, else off.",
)
@click.pass_context
def validate(
    ctx: click.Context,
    task_file: Path,
    tables: tuple[str, ...],
    report: Path | None,
    as_json: bool,
    checksums: bool | None,
) -> None:
    """Validate the target of the task in TASK_FILE against its source.

    Exit status: 0 when every table validates (tables without a primary key are
    compared as multisets of rows), 1 when records mismatch or a table could not be
    validated (each such table is listed with the reason), 2 on bad input.
    """
    try:
        ok = _run(ctx, task_file, (list(tables), report, checksums), as_json)
    except OpenDMSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0 if ok else EXIT_MISMATCH)


def _run(
    ctx: click.Context,
    task_file: Path,
    what: tuple[list[str], Path | None, bool | None],
    as_json: bool,
) -> bool:
    from opendms.config import load_task_file
    from opendms.state import StateStore
    from opendms.validate import validate_task

    tables, report, checksums = what
    spec = load_task_file(task_file)
    root = ctx.find_root().obj
    state = root.get("state") if isinstance(root, dict) else None
    store = StateStore(spec.state or state)
    try:
        result = validate_task(spec, store, tables or None, report, checksums)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        _print(result)
    return result.ok


def _print(result: object) -> None:
    from opendms.cli.ui import console
    from opendms.validate import ValidationResult

    assert isinstance(result, ValidationResult)
    table = RichTable(title=f"validation of task {result.task}")
    for name in ("table", "state", "source rows", "target rows", "mismatches", "message"):
        justify = "right" if "rows" in name or name == "mismatches" else "left"
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t in result.tables:
        table.add_row(
            t.qualified,
            t.state.value,
            f"{t.source_rows:,}",
            f"{t.target_rows:,}",
            f"{t.mismatches:,}",
            t.message,
        )
    console.print(table)
    console.print(f"task {result.task}: {_verdict(result)}", markup=False, highlight=False)
    for t in result.not_validated:
        line = f"  not validated: {t.qualified} ({t.state.value}): {t.message}"
        console.print(line, markup=False, highlight=False)


def _verdict(result: ValidationResult) -> str:
    """One line: everything validated, or how many failures and unvalidated tables."""
    if result.ok:
        count = len(result.tables)
        return f"all {count} table(s) validated" if count else "no table to validate"
    parts = [f"{len(result.failures)} failure(s) recorded"] if result.failures else []
    if result.not_validated:
        parts.append(f"{len(result.not_validated)} table(s) not validated")
    mismatched = sum(t.mismatches for t in result.tables)
    return "; ".join(parts) or f"{mismatched} mismatched record(s)"
