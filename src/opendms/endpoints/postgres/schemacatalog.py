"""Reading a full PostgreSQL schema (tables, constraints, views, code) for conversion
(``Engine.source_catalog``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.postgres.conn import connect, translate
from opendms.endpoints.postgres.ddldialect import DIALECT
from opendms.endpoints.postgres.types import from_pg
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

TABLES = """
SELECT c.oid, n.nspname, c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) ELSE '' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
ORDER BY 2, 3
"""

# Domains resolve to their base type (through domains over domains); the column keeps
# the outermost domain's oid so its NOT NULL, default and checks can be added.
COLUMNS = """
SELECT a.attname, format_type(coalesce(b.base, a.atttypid), coalesce(b.typmod, a.atttypmod)),
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '',
       coalesce(et.typtype, t.typtype),
       coalesce((SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                 FROM pg_enum e WHERE e.enumtypid = coalesce(et.oid, t.oid)), '{}'),
       coalesce(col_description(a.attrelid, a.attnum), ''),
       a.attgenerated <> '', CASE WHEN dt.typtype = 'd' THEN dt.oid END
FROM pg_attribute a
JOIN pg_type dt ON dt.oid = a.atttypid
LEFT JOIN LATERAL (
    WITH RECURSIVE chain(base, typmod, depth) AS (
        SELECT dt.typbasetype, dt.typtypmod, 1 WHERE dt.typtype = 'd'
        UNION ALL
        SELECT p.typbasetype, CASE WHEN c.typmod >= 0 THEN c.typmod ELSE p.typtypmod END,
               c.depth + 1
        FROM chain c JOIN pg_type p ON p.oid = c.base WHERE p.typtype = 'd')
    SELECT base, typmod FROM chain ORDER BY depth DESC LIMIT 1) b ON true
JOIN pg_type t ON t.oid = coalesce(b.base, a.atttypid)
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

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

PARTITIONS = """
SELECT ch.relname, pg_get_expr(ch.relpartbound, ch.oid), ch.relkind = 'p'
FROM pg_inherits h JOIN pg_class ch ON ch.oid = h.inhrelid
WHERE h.inhparent = %s ORDER BY ch.relname
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
WHERE con.conrelid = %s ORDER BY con.conname
"""

INDEXES = """
SELECT ic.relname, i.indisunique,
       array(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
       i.indnkeyatts, i.indexprs IS NULL AND i.indpred IS NULL, pg_get_indexdef(i.indexrelid),
       am.amname
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = %s AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                  AND c.conrelid = i.indrelid)
ORDER BY ic.relname
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
            catalog.schemas = default_schemas(conn)
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


def default_schemas(conn: Any) -> list[str]:
    """Every user schema of the database."""
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
        "AND nspname <> 'information_schema' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def read(conn: Any, catalog: SourceCatalog) -> None:
    """Fills ``catalog`` from the schemas it names."""
    schemas = catalog.schemas
    domains = _domains(conn)
    catalog.domains = [d.definition for d in domains.values() if d.definition.schema in schemas]
    for oid, schema, name, comment, partition_by in conn.execute(TABLES, (schemas,)).fetchall():
        table = _table(conn, oid, schema, name, domains)
        table.comment, table.partition_by = comment, partition_by
        catalog.tables.append(table)
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


def _table(conn: Any, oid: int, schema: str, name: str, domains: dict[int, _Domain]) -> TableDef:
    rows = conn.execute(COLUMNS, (oid,)).fetchall()
    table = TableDef(schema, name, [_column(r, domains) for r in rows])
    for row in conn.execute(CONSTRAINTS, (oid,)).fetchall():
        _constraint(table, row)
    for col, row in zip(table.columns, rows, strict=True):
        table.checks += _domain_checks(col.name, row[-1], domains)
    for iname, unique, cols, nkeys, plain, sql, method in conn.execute(INDEXES, (oid,)).fetchall():
        expression = "" if plain and nkeys == len(cols) else sql
        method = "" if method == "btree" else method
        table.indexes.append(IndexDef(iname, tuple(cols[:nkeys]), unique, expression, method))
    for part, bound, sub in conn.execute(PARTITIONS, (oid,)).fetchall():
        table.partitions.append(Partition(part, bound, sub))
    return table


def _column(row: Any, domains: dict[int, _Domain]) -> ColumnDef:
    name, formatted, notnull, default, identity, typtype, labels, comment, generated, dom = row
    ctype = from_pg(formatted, typtype, tuple(labels))
    serial = default is not None and default.startswith("nextval(")
    chain = _chain(dom, domains)
    if default is None and not generated:
        default = next((d.default for d in chain if d.default is not None), None)
    return ColumnDef(
        name,
        formatted,
        ctype,
        nullable=not notnull and not any(d.not_null for d in chain),
        default=None if serial or generated else default,
        identity=bool(identity) or serial,
        comment=comment,
        generated=default if generated else "",
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
    if kind == "p":
        table.primary_key = tuple(cols)
    elif kind == "u":
        table.uniques.append(IndexDef(name, tuple(cols), True))
    elif kind == "f":
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
