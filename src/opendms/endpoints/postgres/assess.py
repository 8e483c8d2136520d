"""Assessment checks for PostgreSQL endpoints (as DMS's premigration assessments)."""

from __future__ import annotations

from typing import Any

from opendms.checks import Check, passed, problem, skipped
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.postgres.conn import connect
from opendms.endpoints.postgres.ddl import AUDIT, NEEDS_SUPERUSER, Artifacts
from opendms.endpoints.postgres.settings import PgSettings
from opendms.endpoints.postgres.types import quote_ident
from opendms.model import Table

LONG_TRANSACTION_S = 300
OWNS = "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass(%s)"


def _one(conn: Any, sql: str, args: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, args).fetchone()
    return row[0] if row else None


def source_checks(
    url: EndpointURL, tables: list[Table], cdc: bool, settings: dict[str, Any] | None = None
) -> list[Check]:
    with connect(url) as conn:
        out = [_select_privilege(conn, tables)]
        if not cdc:
            why = "full-load task: logical replication is not used"
            ids = (
                "pg-wal-level",
                "pg-replication-slots",
                "pg-wal-senders",
                "pg-replication-role",
                "pg-ddl-capture",
            )
            return [*out, *(skipped(i, why) for i in ids)]
        out += [
            _wal_level(conn),
            _free(
                conn,
                "pg-replication-slots",
                "max_replication_slots",
                "SELECT count(*) FROM pg_replication_slots",
                "replication slots",
            ),
            _free(
                conn,
                "pg-wal-senders",
                "max_wal_senders",
                "SELECT count(*) FROM pg_stat_replication",
                "WAL senders",
            ),
            _sender_timeout(conn),
            _wal_keep(conn),
            _long_transactions(conn),
            _prepared(conn),
            _replication_role(conn),
            _unkeyed_identity(conn, tables),
            _ddl_capture(conn, url, settings or {}),
        ]
    return out


def _ddl_capture(conn: Any, url: EndpointURL, settings: dict[str, Any]) -> Check:
    """CaptureDdls: the event trigger and audit table, or the right to create them."""
    resolved = PgSettings.resolve(url, settings)
    if not resolved.CaptureDdls:
        return passed(
            "pg-ddl-capture",
            "CaptureDdls=false: no DDL capture; added columns and type changes are followed "
            "from the stream, dropped and renamed columns and tables, and new tables are not",
        )
    art = Artifacts(resolved.DdlArtifactsSchema)
    user = str(_one(conn, "SELECT current_user"))
    superuser = _one(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if art.installed(conn):
        owner = _one(conn, OWNS, (art.q(AUDIT),))
        if superuser or owner:
            return passed("pg-ddl-capture", f"DDL capture objects are in schema {art.schema}")
        return problem(
            "pg-ddl-capture",
            True,
            f"user {user!r} does not own {art.q(AUDIT)}, so it cannot add it to the task's "
            "publication (CaptureDdls=true)",
            f"ALTER TABLE {art.q(AUDIT)} OWNER TO {quote_ident(user)}, or set CaptureDdls=false",
        )
    if superuser:
        return passed(
            "pg-ddl-capture",
            f"user {user} may create the DDL event trigger and audit table in {art.schema}",
        )
    return problem(
        "pg-ddl-capture",
        True,
        NEEDS_SUPERUSER.format(user=quote_ident(user)),
        "set CaptureDdls=false on the source endpoint, or grant it: "
        f"ALTER ROLE {quote_ident(user)} SUPERUSER",
    )


def _wal_level(conn: Any) -> Check:
    level = _one(conn, "SHOW wal_level")
    if level == "logical":
        return passed("pg-wal-level", "wal_level is logical")
    return problem(
        "pg-wal-level",
        True,
        f"wal_level is {level}; change data capture needs logical",
        "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) "
        "and restart the server",
    )


def _free(conn: Any, check_id: str, setting: str, used_sql: str, what: str) -> Check:
    limit = int(_one(conn, f"SHOW {setting}"))
    used = int(_one(conn, used_sql))
    if used < limit:
        return passed(check_id, f"{limit - used} of {limit} {what} free")
    return problem(
        check_id,
        True,
        f"all {limit} {what} are in use ({setting})",
        f"raise {setting} (restart needed) or drop unused ones",
    )


def _sender_timeout(conn: Any) -> Check:
    value = _one(conn, "SELECT setting::int FROM pg_settings WHERE name = 'wal_sender_timeout'")
    if value == 0 or value >= 10_000:
        return passed("pg-wal-sender-timeout", f"wal_sender_timeout is {value} ms")
    return problem(
        "pg-wal-sender-timeout",
        False,
        f"wal_sender_timeout is {value} ms: a busy target can make the source drop the stream",
        "set wal_sender_timeout to at least 10s (ALTER SYSTEM SET wal_sender_timeout = '60s')",
    )


def _wal_keep(conn: Any) -> Check:
    value = _one(conn, "SHOW max_slot_wal_keep_size")
    if value not in ("-1", -1):
        return passed("pg-max-slot-wal-keep-size", f"max_slot_wal_keep_size is {value}")
    return problem(
        "pg-max-slot-wal-keep-size",
        False,
        "max_slot_wal_keep_size is unlimited: a stopped task's slot keeps WAL until the disk fills",
        "set max_slot_wal_keep_size to what the disk can spare, and delete tasks you no longer "
        "run (opendms task delete NAME drops the slot)",
    )


def _long_transactions(conn: Any) -> Check:
    rows = conn.execute(
        "SELECT pid, extract(epoch FROM now() - xact_start)::int FROM pg_stat_activity "
        "WHERE xact_start < now() - make_interval(secs => %s) AND pid <> pg_backend_pid()",
        (LONG_TRANSACTION_S,),
    ).fetchall()
    if not rows:
        return passed("pg-long-transactions", "no transaction open longer than 5 minutes")
    return problem(
        "pg-long-transactions",
        False,
        f"{len(rows)} transaction(s) open longer than {LONG_TRANSACTION_S} s: creating the "
        "replication slot waits until they end",
        "commit or end them (pg_terminate_backend(pid)) before starting the task",
        tuple(f"pid {pid} ({age} s)" for pid, age in rows),
    )


def _prepared(conn: Any) -> Check:
    rows = conn.execute("SELECT gid FROM pg_prepared_xacts").fetchall()
    if not rows:
        return passed("pg-prepared-transactions", "no prepared transactions")
    return problem(
        "pg-prepared-transactions",
        False,
        f"{len(rows)} prepared transaction(s) pending: slot creation waits for them",
        "COMMIT PREPARED or ROLLBACK PREPARED them",
        tuple(str(r[0]) for r in rows),
    )


def _replication_role(conn: Any) -> Check:
    user = _one(conn, "SELECT current_user")
    ok = _one(conn, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")
    if ok:
        return passed("pg-replication-role", f"user {user} may replicate")
    return problem(
        "pg-replication-role",
        True,
        f"user {user!r} has no REPLICATION attribute",
        f"ALTER ROLE {quote_ident(str(user))} REPLICATION",
    )


def _select_privilege(conn: Any, tables: list[Table]) -> Check:
    denied = [
        t.qualified
        for t in tables
        if not _one(
            conn,
            "SELECT has_table_privilege(%s, 'SELECT')",
            (f"{quote_ident(t.schema)}.{quote_ident(t.name)}",),
        )
    ]
    if not denied:
        return passed("pg-select-privilege", f"SELECT on all {len(tables)} table(s)")
    return problem(
        "pg-select-privilege",
        True,
        f"no SELECT privilege on {len(denied)} table(s)",
        "GRANT SELECT ON the tables (or ALL TABLES IN SCHEMA) TO the task's user",
        tuple(denied),
    )


def _unkeyed_identity(conn: Any, tables: list[Table]) -> Check:
    """CDC: a table without a primary key needs REPLICA IDENTITY FULL."""
    bad = []
    for table in tables:
        if table.primary_key:
            continue
        ident = _one(
            conn,
            "SELECT relreplident FROM pg_class WHERE oid = %s::regclass",
            (f"{quote_ident(table.schema)}.{quote_ident(table.name)}",),
        )
        if ident != "f":
            bad.append(table.qualified)
    if not bad:
        return passed("pg-replica-identity", "every table has a primary key or REPLICA IDENTITY")
    return problem(
        "pg-replica-identity",
        True,
        f"{len(bad)} table(s) have no primary key and no REPLICA IDENTITY FULL: their updates "
        "and deletes cannot be replicated (PostgreSQL refuses them once published)",
        "add a primary key, or ALTER TABLE ... REPLICA IDENTITY FULL",
        tuple(bad),
    )


def target_checks(url: EndpointURL, existing: list[str]) -> list[Check]:
    with connect(url) as conn:
        schema = _one(conn, "SELECT current_schema()")
        may = _one(
            conn,
            "SELECT has_database_privilege(current_database(), 'CREATE') OR "
            "coalesce(has_schema_privilege(current_schema(), 'CREATE'), false)",
        )
        user = _one(conn, "SELECT current_user")
    if may:
        return [passed("target-create-privilege", f"user {user} may create tables")]
    return [
        problem(
            "target-create-privilege",
            True,
            f"user {user!r} may not create tables or schemas (schema {schema})",
            f"GRANT CREATE ON DATABASE ... TO {quote_ident(str(user))}, or GRANT CREATE ON "
            "SCHEMA ... TO it",
        )
    ]


def domains(url: EndpointURL) -> dict[str, str]:
    """Every domain of the database, named as format_type() names column types, with
    the base type it is declared on."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT format_type(oid, NULL), format_type(typbasetype, typtypmod) FROM pg_type "
            "WHERE typtype = 'd'"
        ).fetchall()
    return {name: base for name, base in rows}
