"""Schema conversion with an action-item report (like AWS SCT).

``convert()`` reads the full catalog of a PostgreSQL, MySQL/MariaDB or SQLite
source, writes target DDL (``schema.sql``) plus ``report.json`` / ``report.html``;
``converted_ddl()`` gives the per-table DDL for a task's DROP_AND_CREATE.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opendms.convert.apply import apply, trial
from opendms.convert.catalog import dialect_for, read_catalog
from opendms.convert.ddl import Conversion, Naming, Phase, generate
from opendms.convert.report import report_data, to_html, to_json
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.schemaobjects import Item, SourceCatalog, Status
from opendms.errors import ConfigError

__all__ = [
    "ConversionResult",
    "Item",
    "Status",
    "TableConversion",
    "convert",
    "converted_ddl",
    "per_table",
    "read_catalog",
    "table_conversion",
]


@dataclass
class ConversionResult:
    """What ``convert`` produced: the DDL, the report data and the files written."""

    catalog: SourceCatalog
    conversion: Conversion
    report: dict[str, Any]
    files: dict[str, Path]

    @property
    def statements(self) -> list[str]:
        return self.conversion.ddl()

    @property
    def items(self) -> list[Item]:
        return self.conversion.items

    @property
    def summary(self) -> dict[str, dict[str, int]]:
        summary: dict[str, dict[str, int]] = self.report["summary"]
        return summary


def target_engine_name(name: str) -> str:
    """The dialect name of target engine ``name`` (a dialect name or a URL scheme)."""
    return dialect_for(name).name


def convert(
    source_url: str,
    target_engine: str,
    schemas: Sequence[str] = (),
    out_dir: str | Path | None = None,
    target_schema: str | None = None,
    apply_to: str | None = None,
    check_on: str | None = None,
) -> ConversionResult:
    """Converts the ``schemas`` of ``source_url`` (all by default) to ``target_engine``.

    With ``out_dir`` it writes ``schema.sql``, ``report.json`` and ``report.html``
    there. PostgreSQL targets keep the source schema names (a MySQL database
    becomes a schema) unless ``target_schema`` is given; MySQL and SQLite DDL
    is unqualified (run it in the target database) unless ``target_schema`` is set.
    ``apply_to`` (a target database URL) creates the objects there; ``check_on`` runs
    the DDL there in throwaway schemas and removes them. Either way, every object
    whose DDL the target refuses is reported ``failed`` with the target's error.
    """
    engine = target_engine_name(target_engine)
    url = EndpointURL.parse(source_url)
    catalog = read_catalog(url, schemas)
    naming = Naming(target_schema)
    conversion = generate(catalog, engine, naming)
    if apply_to is not None:
        apply(conversion, apply_to)
    elif check_on is not None:
        trial(conversion, lambda n: generate(catalog, engine, n), naming, catalog.schemas, check_on)
    report = report_data(conversion, str(url), catalog.schemas)
    files = write_outputs(Path(out_dir), conversion, report) if out_dir is not None else {}
    return ConversionResult(catalog, conversion, report, files)


def write_outputs(out: Path, conversion: Conversion, report: dict[str, Any]) -> dict[str, Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        files = {name: out / name for name in ("schema.sql", "report.json", "report.html")}
        header = f"-- opendms convert: {conversion.source} -> {conversion.target}\n\n"
        files["schema.sql"].write_text(header + conversion.script(), encoding="utf-8")
        files["report.json"].write_text(to_json(report), encoding="utf-8")
        files["report.html"].write_text(to_html(report), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the conversion output to {out}: {exc.strerror}") from exc
    return files


TableNames = Mapping[tuple[str, str], tuple[str, str]]


@dataclass
class TableConversion:
    """The conversion of some tables of a source (a task's), to run table by table."""

    catalog: SourceCatalog
    engine: str
    naming: Naming

    def generate(self, naming: Naming | None = None) -> Conversion:
        """Generated columns become plain ones: the load copies the source's values."""
        return generate(self.catalog, self.engine, naming or self.naming, False)


def table_conversion(
    source_url: str,
    target_engine: str,
    tables: Iterable[tuple[str, str]] | TableNames,
    target_schema: str | None = None,
) -> TableConversion:
    """The conversion of ``tables`` only (no views, sequences or code).

    ``tables`` is a list of source ``(schema, table)`` or a mapping from those to the
    ``(target schema, target table)`` a task's rename rules give them.
    """
    wanted = list(dict.fromkeys(tables))
    engine = target_engine_name(target_engine)
    catalog = read_catalog(EndpointURL.parse(source_url), sorted({s for s, _ in wanted}))
    catalog.tables = [t for t in catalog.tables if (t.schema, t.name) in set(wanted)]
    catalog.views, catalog.code, catalog.sequences = [], [], []
    renames = dict(tables) if isinstance(tables, Mapping) else {}
    schemas = {schema: renames[(schema, name)][0] for schema, name in reversed(renames)}
    return TableConversion(catalog, engine, Naming(target_schema, schemas, renames))


def converted_ddl(
    source_url: str,
    target_engine: str,
    tables: Iterable[tuple[str, str]] | TableNames,
    foreign_keys: bool = False,
    target_schema: str | None = None,
) -> dict[tuple[str, str], list[str]]:
    """Per source ``(schema, table)``: the statements creating it on ``target_engine``.

    Each list holds, in order, the enum types and domains the table uses (PostgreSQL
    target, created only if missing), CREATE TABLE (and its partitions), unique and
    check constraints, foreign keys (only with ``foreign_keys``), indexes and comments.
    Views, sequences and code are not included. Tables that are not found are left out.
    """
    converted = table_conversion(source_url, target_engine, tables, target_schema)
    return per_table(converted.generate(), foreign_keys)


def per_table(
    conversion: Conversion, foreign_keys: bool = False
) -> dict[tuple[str, str], list[str]]:
    """The statements of each table, in run order (see :func:`converted_ddl`)."""
    types = _type_statements(conversion)
    out: dict[tuple[str, str], list[str]] = {}
    for _, stmt in conversion.ordered():
        if stmt.table is None or (stmt.phase is Phase.FOREIGN_KEYS and not foreign_keys):
            continue
        out.setdefault(stmt.table, list(types.get(stmt.table, [])))
        out[stmt.table].append(stmt.sql)
    return out


def _type_statements(conversion: Conversion) -> dict[tuple[str, str], list[str]]:
    """Enum types and domains per table, wrapped to be skipped when they exist (targets
    with such types)."""
    wrap = dialect_for(conversion.target).if_missing
    if not wrap:
        return {}
    creates = [s for s in conversion.statements if s.phase is Phase.TYPES]
    out: dict[tuple[str, str], list[str]] = {}
    for stmt in conversion.statements:
        if stmt.phase is not Phase.TABLES or stmt.table is None or stmt.table in out:
            continue
        used = [c.sql for c in creates if c.creates and c.creates in stmt.sql]
        out[stmt.table] = [wrap.format(c) for c in used]
    return out
