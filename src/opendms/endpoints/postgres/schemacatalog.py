"""Reading a full PostgreSQL schema for conversion (``Engine.source_catalog``): the
tables, their columns, keys, indexes and partitions as :mod:`.catalog` reads them, and
on top of them domains, foreign keys, checks, enums, sequences, views and code."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.postgres import catalog as reader
from opendms.endpoints.postgres.conn import connect, translate
from opendms.endpoints.postgres.ddldialect import DIALECT
from opendms.endpoints.schemaobjects import (
    Check,
    CodeObject,
    ColumnDef,
    DomainDef,
    EnumDef,
    ForeignKey,
    IndexDef,
    Partition,
    SequenceDef,
    SourceCatalog,
    TableDef,
    ViewDef,
)
from opendms.errors import OpenDMSError

DOMAINS = """
SELECT t.oid, n.nspname, t.typname, format_type(t.typbasetype, t.typtypmod), t.typbasetype,
       t.typnotnull, t.typdefault,
       array(SELECT c.conname FROM pg_constraint c
             WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname),
       array(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
             WHERE c.contypid = t.oid AND c.contype = 'c' ORDER BY c.conname)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'd' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 2, 3
"""

CONSTRAINTS = """
SELECT con.conname, con.contype,
       array(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
       rn.nspname, rc.relname,
       array(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o),
       con.confdeltype, con.confupdtype, pg_get_constraintdef(con.oid)
FROM pg_constraint con
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE con.conrelid = %s AND con.contype IN ('f', 'c') ORDER BY con.conname
"""

ENUMS = """
SELECT n.nspname, t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
WHERE n.nspname = ANY(%s) GROUP BY 1, 2 ORDER BY 1, 2
"""

SEQUENCES = """
SELECT n.nspname, c.relname, s.seqstart, s.seqincrement,
       coalesce((SELECT tc.relname || '.' || a.attname FROM pg_depend d
                 JOIN pg_class tc ON tc.oid = d.refobjid
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                 WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass
                   AND d.deptype IN ('a', 'i') LIMIT 1), ''),
       array(SELECT tc.relname || '.' || a.attname FROM pg_depend d
             JOIN pg_attrdef ad ON ad.oid = d.objid
             JOIN pg_class tc ON tc.oid = ad.adrelid AND NOT tc.relispartition
             JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
             WHERE d.classid = 'pg_attrdef'::regclass AND d.refobjid = c.oid ORDER BY 1)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_sequence s ON s.seqrelid = c.oid
WHERE c.relkind = 'S' AND n.nspname = ANY(%s) ORDER BY 1, 2
"""

VIEWS = """
SELECT n.nspname, c.relname, pg_get_viewdef(c.oid, true),
       coalesce(obj_description(c.oid, 'pg_class'), ''), c.relkind = 'm'
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY(%s) ORDER BY c.oid
"""

# pg_get_functiondef() refuses aggregates: their CREATE AGGREGATE is rebuilt.
ROUTINES = """
SELECT n.nspname, p.proname, p.prokind,
       CASE WHEN p.prokind = 'a' THEN format(
           'CREATE AGGREGATE %%I.%%I(%%s) (SFUNC = %%s, STYPE = %%s%%s)', n.nspname, p.proname,
           pg_get_function_identity_arguments(p.oid), ag.aggtransfn::regproc,
           format_type(ag.aggtranstype, NULL),
           CASE WHEN ag.agginitval IS NULL THEN ''
                ELSE ', INITCOND = ' || quote_literal(ag.agginitval) END)
       ELSE pg_get_functiondef(p.oid) END
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_aggregate ag ON ag.aggfnoid = p.oid
WHERE n.nspname = ANY(%s) AND p.prokind IN ('f', 'p', 'a')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""

TRIGGERS = """
SELECT n.nspname, tg.tgname, c.relname, pg_get_triggerdef(tg.oid, true)
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT tg.tgisinternal AND n.nspname = ANY(%s) ORDER BY 1, 3, 2
"""


@dataclass(frozen=True)
class _Domain:
    definition: DomainDef
    base_oid: int


_FK_ACTIONS = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}


def read_catalog(url: EndpointURL, schemas: Sequence[str]) -> SourceCatalog:
    """Everything conversion reads from ``schemas`` of ``url`` (every user schema when
    none is named)."""
    catalog = SourceCatalog(DIALECT.name, str(url), list(schemas))
    conn = connect(url)
    try:
        if not catalog.schemas:
            catalog.schemas = reader.user_schemas(conn)
        known = conn.execute("SELECT nspname FROM pg_namespace").fetchall()
        catalog.check_schemas({r[0] for r in known})
        read(conn, catalog)
    except Exception as exc:
        if isinstance(exc, OpenDMSError):
            raise
        raise translate(exc, url) from exc
    finally:
        conn.close()
    return catalog


def read(conn: Any, catalog: SourceCatalog) -> None:
    """Fills ``catalog`` from the schemas it names."""
    schemas = catalog.schemas
    domains = _domains(conn)
    catalog.domains = [d.definition for d in domains.values() if d.definition.schema in schemas]
    for row in reader.tables(conn, schemas):
        catalog.tables.append(_table(conn, row, domains))
    for schema, name, labels in conn.execute(ENUMS, (schemas,)).fetchall():
        catalog.enums.append(EnumDef(schema, name, tuple(labels)))
    for schema, name, start, inc, owned, used in conn.execute(SEQUENCES, (schemas,)).fetchall():
        seq = SequenceDef(schema, name, owned, int(start), int(inc), tuple(used))
        catalog.sequences.append(seq)
    for schema, name, sql, comment, matview in conn.execute(VIEWS, (schemas,)).fetchall():
        catalog.views.append(ViewDef(schema, name, sql.strip().rstrip(";"), comment, matview))
    for schema, name, kind, sql in conn.execute(ROUTINES, (schemas,)).fetchall():
        kind_name = "procedures" if kind == "p" else "functions"
        catalog.code.append(CodeObject(kind_name, schema, name, sql, aggregate=kind == "a"))
    for schema, name, table, sql in conn.execute(TRIGGERS, (schemas,)).fetchall():
        catalog.code.append(CodeObject("triggers", schema, name, sql, table))


def _domains(conn: Any) -> dict[int, _Domain]:
    out = {}
    for oid, schema, name, base, base_oid, notnull, default, names, defs in conn.execute(
        DOMAINS
    ).fetchall():
        checks = tuple(Check(n, _check_body(d)) for n, d in zip(names, defs, strict=True))
        out[oid] = _Domain(DomainDef(schema, name, base, notnull, default, checks), base_oid)
    return out


def _table(conn: Any, row: reader.TableRow, domains: dict[int, _Domain]) -> TableDef:
    columns = reader.columns(conn, row.oid)
    table = TableDef(row.schema, row.name, [_column(c, domains) for c in columns])
    table.comment, table.partition_by = row.comment, row.partition_by
    for constraint in conn.execute(CONSTRAINTS, (row.oid,)).fetchall():
        _constraint(table, constraint)
    for col in columns:
        table.checks += _domain_checks(col.name, col.domain, domains)
    for index in reader.indexes(conn, row.oid):
        _index(table, index)
    for child in reader.children(conn, row.oid):
        # An inheritance child has no bound (None): listed as the catalog has it.
        bound: Any = child.bound
        table.partitions.append(Partition(child.name, bound, child.partitioned))
    return table


def _index(table: TableDef, index: reader.IndexRow) -> None:
    """The primary key, a unique constraint or (backing no constraint) an index."""
    if index.primary:
        table.primary_key = index.keys
    elif "u" in index.constraints:
        table.uniques.append(IndexDef(index.name, index.keys, True))
    elif not index.constraints:
        whole = index.plain and index.key_count == len(index.columns)
        method = "" if index.method == "btree" else index.method
        expression = "" if whole else index.definition
        table.indexes.append(IndexDef(index.name, index.keys, index.unique, expression, method))


def _column(col: reader.ColumnRow, domains: dict[int, _Domain]) -> ColumnDef:
    serial = col.default is not None and col.default.startswith("nextval(")
    chain = _chain(col.domain, domains)
    default = col.default
    if default is None and not col.generated:
        default = next((d.default for d in chain if d.default is not None), None)
    return ColumnDef(
        col.name,
        col.base.formatted,
        col.base.canonical(),
        nullable=not col.not_null and not any(d.not_null for d in chain),
        default=None if serial or col.generated else default,
        identity=col.identity or serial,
        comment=col.comment,
        generated=(col.default or "") if col.generated else "",
        domain=f"{chain[0].schema}.{chain[0].name}" if chain else "",
    )


def _chain(oid: int | None, domains: dict[int, _Domain]) -> list[DomainDef]:
    """The domain ``oid`` and the domains it is based on, outermost first."""
    out: list[DomainDef] = []
    while oid in domains and len(out) < 32:
        out.append(domains[oid].definition)
        oid = domains[oid].base_oid
    return out


def _domain_checks(column: str, oid: int | None, domains: dict[int, _Domain]) -> list[Check]:
    """The checks of the column's domains, on the column instead of VALUE."""
    return [
        Check(
            f"{column}_{check.name}",
            on_column(check.expression, column),
            f"{domain.schema}.{domain.name}",
        )
        for domain in _chain(oid, domains)
        for check in domain.checks
    ]


_TOKENS = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")|\bVALUE\b", re.I)


def on_column(expression: str, column: str) -> str:
    """A domain check on ``column``: each ``VALUE`` outside literals becomes the column."""
    quoted = '"' + column.replace('"', '""') + '"'
    return _TOKENS.sub(lambda m: m.group(1) or quoted, expression)


def _constraint(table: TableDef, row: Any) -> None:
    name, kind, cols, ref_schema, ref_table, ref_cols, on_del, on_upd, sql = row
    if kind == "f":
        fk = ForeignKey(
            name,
            tuple(cols),
            ref_schema,
            ref_table,
            tuple(ref_cols),
            _FK_ACTIONS.get(on_del, "NO ACTION"),
            _FK_ACTIONS.get(on_upd, "NO ACTION"),
        )
        table.foreign_keys.append(fk)
    elif kind == "c":
        table.checks.append(Check(name, _check_body(sql)))


def _check_body(sql: str) -> str:
    """``CHECK ((a > 0)) NOT VALID`` -> ``(a > 0)``."""
    body = sql.strip()
    if body.upper().endswith("NOT VALID"):
        body = body[: -len("NOT VALID")].strip()
    return body[len("CHECK") :].strip() if body.upper().startswith("CHECK") else body
