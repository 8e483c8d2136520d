"""``opendms query``: federated SQL across endpoints (docs/query.md), a thin layer over
:func:`opendms.query.run.run_query` and :func:`~opendms.query.run.explain`."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import click
from rich.table import Table as RichTable

from opendms.cli.ui import console, errors_as_lines, named_endpoints
from opendms.errors import ConfigError
from opendms.query.output import FORMATS, cell_text, write
from opendms.query.run import QueryOptions, QueryResult, SourceRead, explain, run_query


@click.command("query")
@click.argument("sql")
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="NAME=URL",
    help="An endpoint the query names as NAME.schema.table (repeatable).",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="NAME.SCHEMA.TABLE=COL[,COL]",
    help="The key a lake table's CDC files are folded by (repeatable).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="Output format (default: table on a terminal, else csv).",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE.")
@click.option(
    "--explain", "only_explain", is_flag=True, help="Print what each source is asked; read nothing."
)
@click.option("--analyze", is_flag=True, help="Run, and print what each source was asked too.")
@click.option(
    "--no-pushdown",
    is_flag=True,
    help="Read whole tables (no filters, columns or limits sent): to compare.",
)
@errors_as_lines
def query(  # noqa: PLR0913 - one parameter per command-line option (click)
    sql: str,
    endpoints: tuple[str, ...],
    keys: tuple[str, ...],
    fmt: str | None,
    out: Path | None,
    only_explain: bool,
    analyze: bool,
    no_pushdown: bool,
) -> None:
    """Run SQL (DuckDB's dialect) over tables of several endpoints, each named
    ENDPOINT.SCHEMA.TABLE; filters, columns and limits go to the sources."""
    options = QueryOptions(named_endpoints(endpoints), _keys(keys), not no_pushdown)
    if only_explain:
        _print_plan(explain(sql, options), sys.stdout)
        return
    result = run_query(sql, options)
    if analyze:
        _print_plan(result, sys.stderr)
    _output(result, fmt, out)
    _print_stats(result)


def _keys(given: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for item in given:
        table, sep, columns = item.partition("=")
        names = tuple(c.strip() for c in columns.split(",") if c.strip())
        if not sep or table.count(".") != 2 or not names:
            raise ConfigError(f"--key {item!r}: expected ENDPOINT.SCHEMA.TABLE=COLUMN[,COLUMN]")
        found[table] = names
    return found


def _output(result: QueryResult, fmt: str | None, out: Path | None) -> None:
    fmt = fmt or ("table" if out is None and sys.stdout.isatty() else "csv")
    if fmt == "table":
        if out is not None:
            raise ConfigError(
                "--format table prints to the terminal; use csv, jsonl or parquet with --out"
            )
        if result.table.num_rows > console.size.height - 6 and sys.stdout.isatty():
            with console.pager(styles=True):  # longer than the screen: paged ($PAGER, less)
                console.print(_rich(result))
        else:
            console.print(_rich(result))
        return
    if fmt == "parquet" and out is None and sys.stdout.isatty():
        raise ConfigError("--format parquet is binary: give --out FILE or redirect stdout")
    with ExitStack() as stack:
        stream: IO[bytes] = stack.enter_context(out.open("wb")) if out else sys.stdout.buffer
        write(result.table, fmt, stream)
        stream.flush()


def _rich(result: QueryResult) -> RichTable:
    table = RichTable()
    for name in result.table.column_names:
        table.add_column(name)
    for row in result.table.to_pylist():
        table.add_row(*("NULL" if v is None else cell_text(v) for v in row.values()))
    return table


def _print_plan(result: QueryResult, stream: IO[str]) -> None:
    for read in result.reads:
        scan = read.request.scan
        print(f"{scan.name} ({scan.register}):", file=stream)
        for line in read.request.text.splitlines():
            print(f"  {line}", file=stream)
        kept = "; ".join(p.sql for p in read.request.kept)
        if kept:
            print(f"  kept in DuckDB only: {kept}", file=stream)
    print(f"DuckDB: {result.sql}", file=stream)


def _print_stats(result: QueryResult) -> None:
    click.echo(f"{result.table.num_rows:,} rows in {result.seconds:.2f}s", err=True)
    for read in result.reads:
        click.echo(f"  {_stat(read)}", err=True)


def _stat(read: SourceRead) -> str:
    calls = ", ".join(f"{n} {op}" for op, n in sorted(read.request.calls.items()))
    extra = f", {calls}" if calls else ""
    rejected = f", {read.rejected} values not representable (NULL)" if read.rejected else ""
    return (
        f"{read.request.scan.name}: {read.rows:,} rows read in {read.seconds:.2f}s{extra}{rejected}"
    )
