"""``opendms convert``: schema conversion with an action-item report (like AWS SCT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from opendms.errors import OpenDMSError


@click.command("convert")
@click.option("--source", "source", required=True, help="Source endpoint URL.")
@click.option(
    "--target-engine",
    required=True,
    type=click.Choice(["postgresql", "mysql", "sqlite"], case_sensitive=False),
    help="Engine to generate DDL for.",
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
    "the source schema names, MySQL and SQLite DDL is unqualified).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report to stdout.")
def convert(
    source: str,
    target_engine: str,
    schemas: tuple[str, ...],
    out: Path,
    target_schema: str | None,
    as_json: bool,
) -> None:
    """Convert a source schema to another engine's DDL, with an action-item report."""
    from opendms.convert import convert as run_convert

    try:
        result = run_convert(source, target_engine, schemas, out, target_schema)
    except OpenDMSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(result.report, indent=2, ensure_ascii=False))
        return
    totals = result.report["totals"]
    click.echo(
        f"converted {len(result.items)} objects: "
        + ", ".join(f"{count} {status}" for status, count in totals.items())
    )
    for name, path in result.files.items():
        click.echo(f"  {name}: {path}")
    manual = [i for i in result.items if i.status.value == "manual"]
    for item in manual:
        click.echo(f"  manual: {item.kind[:-1]} {item.qualified}: {item.remediation}")
