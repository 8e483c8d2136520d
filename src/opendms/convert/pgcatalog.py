"""Reading a full PostgreSQL schema (tables, constraints, views, code) for conversion."""

from __future__ import annotations

from typing import Any

from opendms.convert.objects import (
    Check,
    CodeObject,
    ColumnDef,
    EnumDef,
    ForeignKey,
    IndexDef,
    SequenceDef,
    SourceCatalog,
    TableDef,
    ViewDef,
)
from opendms.endpoints.postgres.types import from_pg

TABLES = """
SELECT c.oid, n.nspname, c.relname, coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s)
ORDER BY 2, 3
"""

COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '',
       coalesce(et.typtype, t.typtype),
       coalesce((SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                 FROM pg_enum e WHERE e.enumtypid = coalesce(et.oid, t.oid)), '{}'),
       coalesce(col_description(a.attrelid, a.attnum), '')
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
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
       i.indnkeyatts, i.indexprs IS NULL AND i.indpred IS NULL, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
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
                   AND d.deptype IN ('a', 'i') LIMIT 1), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_sequence s ON s.seqrelid = c.oid
WHERE c.relkind = 'S' AND n.nspname = ANY(%s) ORDER BY 1, 2
"""

VIEWS = """
SELECT n.nspname, c.relname, pg_get_viewdef(c.oid, true),
       coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND n.nspname = ANY(%s) ORDER BY c.oid
"""

ROUTINES = """
SELECT n.nspname, p.proname, p.prokind, pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%s) AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""

TRIGGERS = """
SELECT n.nspname, tg.tgname, c.relname, pg_get_triggerdef(tg.oid, true)
FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT tg.tgisinternal AND n.nspname = ANY(%s) ORDER BY 1, 3, 2
"""

_FK_ACTIONS = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}


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
    for oid, schema, name, comment in conn.execute(TABLES, (schemas,)).fetchall():
        catalog.tables.append(_table(conn, oid, schema, name, comment))
    for schema, name, labels in conn.execute(ENUMS, (schemas,)).fetchall():
        catalog.enums.append(EnumDef(schema, name, tuple(labels)))
    for schema, name, start, inc, owned in conn.execute(SEQUENCES, (schemas,)).fetchall():
        catalog.sequences.append(SequenceDef(schema, name, owned, int(start), int(inc)))
    for schema, name, sql, comment in conn.execute(VIEWS, (schemas,)).fetchall():
        catalog.views.append(ViewDef(schema, name, sql.strip().rstrip(";"), comment))
    for schema, name, kind, sql in conn.execute(ROUTINES, (schemas,)).fetchall():
        kind_name = "procedures" if kind == "p" else "functions"
        catalog.code.append(CodeObject(kind_name, schema, name, sql))
    for schema, name, table, sql in conn.execute(TRIGGERS, (schemas,)).fetchall():
        catalog.code.append(CodeObject("triggers", schema, name, sql, table))


def _table(conn: Any, oid: int, schema: str, name: str, comment: str) -> TableDef:
    table = TableDef(schema, name, [_column(r) for r in conn.execute(COLUMNS, (oid,)).fetchall()])
    table.comment = comment
    for row in conn.execute(CONSTRAINTS, (oid,)).fetchall():
        _constraint(table, row)
    for iname, unique, cols, nkeys, plain, sql in conn.execute(INDEXES, (oid,)).fetchall():
        expression = "" if plain and nkeys == len(cols) else sql
        table.indexes.append(IndexDef(iname, tuple(cols[:nkeys]), unique, expression))
    return table


def _column(row: Any) -> ColumnDef:
    name, formatted, notnull, default, identity, typtype, labels, comment = row
    ctype = from_pg(formatted, typtype, tuple(labels))
    serial = default is not None and default.startswith("nextval(")
    return ColumnDef(
        name,
        formatted,
        ctype,
        nullable=not notnull,
        default=None if serial else default,
        identity=bool(identity) or serial,
        comment=comment,
    )


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
