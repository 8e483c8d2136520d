"""``opendms convert``: schema conversion with an action-item report (like AWS SCT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from opendms.errors import OpenDMSError

if TYPE_CHECKING:
    from opendms.convert import ConversionResult


@click.command("convert")
@click.option("--source", "source", required=True, help="Source endpoint URL.")
@click.option(
    "--target-engine",
    required=True,
    callback=lambda ctx, param, value: _ddl_engine(value),
    help="Engine to generate DDL for: its name or URL scheme (a wrong one lists them).",
)
@click.option("--schema", "schemas", multiple=True, help="Schema/database to convert (repeat).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("convert-out"),
    show_default=True,
    help="Directory for schema.sql, report.json and report.html.",
)
@click.option(
    "--target-schema",
    default=None,
    help="Put every object in this target schema/database (default: PostgreSQL keeps "
    "the source schema names, MySQL DDL is unqualified; SQLite DDL is always unqualified).",
)
@click.option(
    "--apply",
    "apply_to",
    metavar="URL",
    default=None,
    help="Create the converted objects in this target database; objects it refuses are "
    "reported as failed.",
)
@click.option(
    "--check",
    "check_on",
    metavar="URL",
    default=None,
    help="Run the converted DDL in throwaway schemas of this target database (a rolled-back "
    "transaction on PostgreSQL, dropped databases on MySQL) and report what it refuses.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report to stdout.")
def convert(  # noqa: PLR0913 - one parameter per command-line option (click)
    source: str,
    target_engine: str,
    schemas: tuple[str, ...],
    out: Path,
    target_schema: str | None,
    apply_to: str | None,
    check_on: str | None,
    as_json: bool,
) -> None:
    """Convert a source schema to another engine's DDL, with an action-item report.

    Exits 1 when the source cannot be read or when the target (--apply / --check)
    refused some of the DDL.
    """
    from opendms.convert import convert as run_convert

    if apply_to and check_on:
        click.echo("error: give --apply or --check, not both", err=True)
        sys.exit(2)
    try:
        result = run_convert(source, target_engine, schemas, out, target_schema, apply_to, check_on)
    except OpenDMSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(result.report, indent=2, ensure_ascii=False))
    else:
        _print_summary(result)
    if any(i.status.value == "failed" for i in result.items):
        sys.exit(1)


def _ddl_engine(name: str) -> str:
    """The conversion target named ``name`` (an engine's name or URL scheme), as the
    registered engines know it; a usage error listing them otherwise."""
    from opendms.convert.catalog import dialect_for
    from opendms.errors import ConfigError

    try:
        return dialect_for(name).name
    except ConfigError as exc:
        raise click.BadParameter(exc.message) from None


def _print_summary(result: ConversionResult) -> None:
    from opendms.endpoints.schemaobjects import singular

    totals = result.report["totals"]
    click.echo(
        f"converted {len(result.items)} objects: "
        + ", ".join(f"{count} {status}" for status, count in totals.items())
    )
    for name, path in result.files.items():
        click.echo(f"  {name}: {path}")
    for item in result.items:
        if item.status.value == "failed":
            click.echo(f"  failed: {singular(item.kind)} {item.qualified}: {item.messages[-1]}")
    for item in result.items:
        if item.status.value == "manual":
            click.echo(f"  manual: {singular(item.kind)} {item.qualified}: {item.remediation}")
