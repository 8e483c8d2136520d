"""DDL capture on a PostgreSQL source (endpoint setting ``CaptureDdls``, default true).

``pgoutput`` streams rows, never DDL. As DMS does, opendms creates in the schema
``DdlArtifactsSchema`` (default ``public``) an audit table that is part of the task's
publication and an event trigger writing to it, so every DDL reaches the stream in
commit order with the data around it:

* ``opendms_ddl_audit``: one row per table a DDL command changed (tag, table OID, the
  table's columns before and after, the publications it was added to, the query). The
  row is deleted again in the same transaction: the table stays empty, the WAL keeps it.
* ``opendms_ddl_tables``: each table's columns as last seen (the "before" of the next
  DDL), by OID: a renamed column keeps its attribute number, so a rename is told from a
  drop plus an add without parsing SQL.
* ``opendms_ddl_rules``: the selection rules of each task's publication (as regular
  expressions). A table that a task's rules select but its publication lacks (created,
  or renamed into the selection, during CDC) is added to the publication by the trigger
  in the same transaction, so none of its later rows is missed; the rows it already
  holds (``CREATE TABLE AS``, ``SELECT INTO``) are emitted as transactional logical
  messages (``opendms_row:<oid>``). A table without a primary key or REPLICA IDENTITY
  FULL is left out until it gets one (published, its updates and deletes would fail on
  the source); the audit row says so and the task logs it.
* ``opendms_intercept_ddl()`` (``SECURITY DEFINER``) and the event triggers
  ``opendms_intercept_ddl`` (``ddl_command_end``) and ``opendms_intercept_drop``
  (``sql_drop``); outside ``public`` they get the schema as a suffix. A failure inside the
  trigger never fails the user's DDL: it raises a WARNING and that DDL is not captured.

Creating an event trigger needs a superuser (PostgreSQL 15). The objects are shared by
the tasks on one database and dropped with the last task that uses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opendms.endpoints.postgres.conn import require_psycopg
from opendms.endpoints.postgres.types import quote_ident
from opendms.errors import PrivilegeError

AUDIT = "opendms_ddl_audit"
TABLES = "opendms_ddl_tables"
RULES = "opendms_ddl_rules"
FUNCTION = "opendms_intercept_ddl"
DESCRIBE = "opendms_ddl_describe"
VERSION = "opendms DDL capture 1"
ROW_PREFIX = "opendms_row:"
TABLES_ALL = (AUDIT, TABLES, RULES)
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('opendms DDL capture'))"
NEEDS_SUPERUSER = (
    "CaptureDdls=true: creating the DDL event trigger needs a superuser (PostgreSQL 15); "
    "run the task once as a superuser (or ALTER ROLE {user} SUPERUSER), or set the source "
    "endpoint setting CaptureDdls=false (added columns and type changes are then followed "
    "from the stream; drops, renames and new tables are not)"
)

_DESCRIBE = """
CREATE OR REPLACE FUNCTION {s}.{describe}(rel oid) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT jsonb_build_object(
  'schema', n.nspname, 'name', c.relname,
  'columns', coalesce((
    SELECT jsonb_agg(jsonb_build_array(a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
             a.attnotnull, coalesce(et.typtype, t.typtype),
             coalesce((SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
                       WHERE e.enumtypid = coalesce(et.oid, t.oid)), '[]'::jsonb))
           ORDER BY a.attnum)
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::jsonb),
  'key', coalesce((
    SELECT jsonb_agg(a.attname ORDER BY k.ord)
    FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
    WHERE i.indrelid = c.oid AND i.indisprimary AND k.ord <= i.indnkeyatts), '[]'::jsonb),
  'identity', c.relreplident)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel
$fn$
"""

# The text settings are the replication connection's (textvalues.SESSION_OPTIONS) and
# format('%s', v) calls the type's output function (a cast to text may not: 't' is
# 'true', inet gains its mask, char(n) loses its padding), so the rows of CREATE TABLE
# AS have the very text forms pgoutput sends.
_INTERCEPT = """
CREATE OR REPLACE FUNCTION {s}.{function}() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO' SET IntervalStyle = 'iso_8601'
SET TimeZone = 'UTC' SET extra_float_digits = 3 SET bytea_output = 'hex'
AS $fn$
DECLARE
  r record;
  pub text;
  k bigint;
  old jsonb;
  new jsonb;
  published jsonb;
  note text;
  cols text;
  keyed boolean;
BEGIN
  IF tg_event = 'sql_drop' THEN
    FOR r IN SELECT DISTINCT d.objid, d.schema_name, d.object_name
             FROM pg_event_trigger_dropped_objects() d
             WHERE d.object_type = 'table' AND d.classid = 'pg_class'::regclass LOOP
      old := coalesce((SELECT c_table FROM {s}.{tables} WHERE c_oid = r.objid),
        jsonb_build_object('schema', r.schema_name, 'name', r.object_name,
                           'columns', '[]'::jsonb, 'key', '[]'::jsonb));
      INSERT INTO {s}.{audit} (c_tag, c_oid, c_before, c_ddlqry)
        VALUES (tg_tag, r.objid, old, current_query()) RETURNING c_key INTO k;
      DELETE FROM {s}.{audit} WHERE c_key = k;
      DELETE FROM {s}.{tables} WHERE c_oid = r.objid;
    END LOOP;
    RETURN;
  END IF;
  FOR r IN SELECT DISTINCT d.objid, n.nspname, c.relname
           FROM pg_event_trigger_ddl_commands() d
           JOIN pg_class c ON c.oid = d.objid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE d.classid = 'pg_class'::regclass AND c.relkind IN ('r', 'p')
             AND c.relpersistence = 'p' AND NOT c.relispartition LOOP
    old := (SELECT c_table FROM {s}.{tables} WHERE c_oid = r.objid);
    new := {s}.{describe}(r.objid);
    CONTINUE WHEN old IS NOT DISTINCT FROM new;
    published := '[]'::jsonb;
    note := NULL;
    keyed := new->>'identity' IN ('f', 'i')
             OR (new->>'identity' = 'd' AND jsonb_array_length(new->'key') > 0);
    FOR pub IN SELECT DISTINCT i.c_publication FROM {s}.{rules} i
               JOIN pg_publication p ON p.pubname = i.c_publication
               WHERE NOT i.c_exclude AND r.nspname ~ i.c_schema AND r.relname ~ i.c_table
                 AND NOT EXISTS (SELECT 1 FROM pg_publication_rel pr
                                 WHERE pr.prpubid = p.oid AND pr.prrelid = r.objid)
                 AND NOT EXISTS (SELECT 1 FROM {s}.{rules} x
                   WHERE x.c_publication = i.c_publication AND x.c_exclude
                     AND r.nspname ~ x.c_schema AND r.relname ~ x.c_table) LOOP
      IF NOT keyed THEN
        note := concat_ws('; ', note, format('%s: no primary key or REPLICA IDENTITY FULL '
                                             '(not captured until it has one)', pub));
        CONTINUE;
      END IF;
      BEGIN
        EXECUTE format('ALTER PUBLICATION %I ADD TABLE %s', pub, r.objid::regclass);
        published := published || to_jsonb(pub);
      EXCEPTION WHEN OTHERS THEN
        note := concat_ws('; ', note, format('%s: %s', pub, SQLERRM));
      END;
    END LOOP;
    INSERT INTO {s}.{audit} (c_tag, c_oid, c_before, c_after, c_published, c_note, c_ddlqry)
      VALUES (tg_tag, r.objid, old, new, published, note, current_query())
      RETURNING c_key INTO k;
    IF tg_tag <> 'CREATE TABLE' AND jsonb_array_length(published) > 0 THEN
      cols := (SELECT string_agg(format('CASE WHEN %1$I IS NULL THEN NULL '
                                        'ELSE format(''%%s'', %1$I) END', attname),
                                 ', ' ORDER BY attnum)
               FROM pg_attribute WHERE attrelid = r.objid AND attnum > 0 AND NOT attisdropped);
      IF cols IS NOT NULL THEN
        EXECUTE format('SELECT count(pg_logical_emit_message(true, %L, '
                       'to_jsonb(ARRAY[%s]::text[])::text)) FROM %s',
                       '{row_prefix}' || r.objid, cols, r.objid::regclass);
      END IF;
    END IF;
    DELETE FROM {s}.{audit} WHERE c_key = k;
    INSERT INTO {s}.{tables} (c_oid, c_table) VALUES (r.objid, new)
      ON CONFLICT (c_oid) DO UPDATE SET c_table = EXCLUDED.c_table;
  END LOOP;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'opendms could not capture this DDL (%): the targets will not follow it',
    SQLERRM;
END
$fn$
"""

_TABLES = """
CREATE TABLE IF NOT EXISTS {s}.{audit} (
  c_key bigserial PRIMARY KEY,
  c_time timestamptz NOT NULL DEFAULT now(),
  c_user text NOT NULL DEFAULT current_user,
  c_txn bigint NOT NULL DEFAULT txid_current(),
  c_tag text NOT NULL,
  c_oid oid NOT NULL,
  c_before jsonb,
  c_after jsonb,
  c_published jsonb,
  c_note text,
  c_ddlqry text
);
CREATE TABLE IF NOT EXISTS {s}.{tables} (c_oid oid PRIMARY KEY, c_table jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.{rules} (
  c_id bigserial PRIMARY KEY,
  c_publication text NOT NULL, c_schema text NOT NULL, c_table text NOT NULL,
  c_exclude boolean NOT NULL
)
"""


@dataclass(frozen=True)
class Artifacts:
    """The names of the DDL-capture objects in one schema."""

    schema: str

    @property
    def triggers(self) -> tuple[str, str]:
        suffix = "" if self.schema == "public" else "_" + re.sub(r"\W", "_", self.schema)
        return (FUNCTION + suffix)[:63], ("opendms_intercept_drop" + suffix)[:63]

    def q(self, name: str) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(name)}"

    def _format(self, sql: str) -> str:
        s = quote_ident(self.schema)
        return sql.format(
            s=s,
            audit=quote_ident(AUDIT),
            tables=quote_ident(TABLES),
            rules=quote_ident(RULES),
            function=quote_ident(FUNCTION),
            describe=quote_ident(DESCRIBE),
            row_prefix=ROW_PREFIX,
        )

    def install_sql(self) -> list[str]:
        """Statements creating (or upgrading) every object, in one transaction."""
        ddl_end, drop = (quote_ident(t) for t in self.triggers)
        function = self.q(FUNCTION)
        return [
            f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}",
            *self._format(_TABLES).split(";\n"),
            self._format(_DESCRIBE),
            self._format(_INTERCEPT),
            f"COMMENT ON FUNCTION {function}() IS '{VERSION}'",
            f"DROP EVENT TRIGGER IF EXISTS {ddl_end}",
            f"CREATE EVENT TRIGGER {ddl_end} ON ddl_command_end EXECUTE FUNCTION {function}()",
            f"DROP EVENT TRIGGER IF EXISTS {drop}",
            f"CREATE EVENT TRIGGER {drop} ON sql_drop EXECUTE FUNCTION {function}()",
        ]

    def uninstall_sql(self) -> list[str]:
        ddl_end, drop = (quote_ident(t) for t in self.triggers)
        return [
            f"DROP EVENT TRIGGER IF EXISTS {ddl_end}",
            f"DROP EVENT TRIGGER IF EXISTS {drop}",
            f"DROP FUNCTION IF EXISTS {self.q(FUNCTION)}()",
            f"DROP FUNCTION IF EXISTS {self.q(DESCRIBE)}(oid)",
            f"DROP TABLE IF EXISTS {self.q(AUDIT)}, {self.q(TABLES)}, {self.q(RULES)}",
        ]

    def installed(self, conn: Any) -> bool:
        """True when every object exists at this version (nothing to create)."""
        version, triggers, tables = conn.execute(
            "SELECT obj_description(to_regprocedure(%s), 'pg_proc'), "
            "(SELECT count(*) FROM pg_event_trigger WHERE evtname = ANY(%s) AND evtenabled <> 'D'),"
            " (SELECT count(to_regclass(t)) FROM unnest(%s::text[]) t)",
            (f"{self.q(FUNCTION)}()", list(self.triggers), [self.q(t) for t in TABLES_ALL]),
        ).fetchone()
        return bool(version == VERSION and triggers == 2 and tables == len(TABLES_ALL))

    def seed_sql(self) -> str:
        """Record the columns of the captured tables (by qualified name) as they are now."""
        return (
            f"INSERT INTO {self.q(TABLES)} (c_oid, c_table) "
            f"SELECT r::oid, {self.q(DESCRIBE)}(r::oid) FROM unnest(%s::text[]::regclass[]) r "
            "ON CONFLICT (c_oid) DO UPDATE SET c_table = EXCLUDED.c_table"
        )


def rule_rows(publication: str, rules: Iterable[tuple[str, str, bool]]) -> list[tuple[Any, ...]]:
    """Rows of ``opendms_ddl_rules`` for (schema regex, table regex, exclude) rules; the
    first row (an exclude rule matching no name) marks the publication as a user."""
    rows: list[tuple[Any, ...]] = [(publication, "^$", "^$", True)]
    return rows + [(publication, f"^(?:{s})$", f"^(?:{t})$", x) for s, t, x in rules]


def install(conn: Any, art: Artifacts, where: str) -> None:
    """Create the objects unless they exist at this version (a PrivilegeError, naming
    CaptureDdls=false, when the user may not create an event trigger)."""
    pg = require_psycopg()
    user = conn.execute("SELECT current_user").fetchone()[0]
    try:
        with conn.transaction():
            conn.execute(_LOCK)
            if art.installed(conn):
                return
            for sql in art.install_sql():
                conn.execute(sql)
    except pg.errors.InsufficientPrivilege as exc:
        raise PrivilegeError(where, NEEDS_SUPERUSER.format(user=quote_ident(user))) from exc


def register(
    conn: Any,
    art: Artifacts,
    publication: str,
    rules: Iterable[tuple[str, str, bool]],
    tables: list[str],
) -> None:
    """The publication's selection rules, and the captured tables' columns as of now."""
    with conn.transaction():
        conn.execute(f"DELETE FROM {art.q(RULES)} WHERE c_publication = %s", (publication,))
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {art.q(RULES)} (c_publication, c_schema, c_table, c_exclude) "
                "VALUES (%s, %s, %s, %s)",
                rule_rows(publication, rules),
            )
        conn.execute(art.seed_sql(), (tables,))


def uninstall(conn: Any, art: Artifacts, publication: str) -> bool:
    """Forget ``publication``'s rules; drop the objects when no other task uses them.
    True when they were dropped (or never existed)."""
    with conn.transaction():
        conn.execute(_LOCK)
        if conn.execute("SELECT to_regclass(%s)", (art.q(RULES),)).fetchone()[0] is not None:
            conn.execute(f"DELETE FROM {art.q(RULES)} WHERE c_publication = %s", (publication,))
            if conn.execute(f"SELECT 1 FROM {art.q(RULES)} LIMIT 1").fetchone() is not None:
                return False
        for sql in art.uninstall_sql():
            conn.execute(sql)
    return True
