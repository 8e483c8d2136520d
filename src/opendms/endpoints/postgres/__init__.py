"""PostgreSQL endpoint: ``postgresql://user:password@host:port/database``."""

from __future__ import annotations

from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.postgres.conn import connect
from opendms.endpoints.postgres.settings import PG_SETTINGS
from opendms.endpoints.postgres.source import PostgresSource
from opendms.endpoints.postgres.target import PostgresTarget
from opendms.errors import PrivilegeError

__all__ = [
    "PostgresSource",
    "PostgresTarget",
    "applier",
    "change_source",
    "check",
    "open_source",
    "open_target",
]


def open_source(url: EndpointURL, settings: dict[str, Any]) -> PostgresSource:
    PG_SETTINGS.resolve(url, settings)
    return PostgresSource(url)


def open_target(url: EndpointURL, settings: dict[str, Any]) -> PostgresTarget:
    PG_SETTINGS.resolve(url, settings)
    return PostgresTarget(url)


def change_source(url: EndpointURL, task: str, settings: dict[str, Any]) -> Any:
    """The task's capture: CaptureDdls and DdlArtifactsSchema decide DDL capture."""
    from opendms.endpoints.postgres.replication import PgReplication

    resolved = PG_SETTINGS.resolve(url, settings)
    return PgReplication(url, task, resolved["CaptureDdls"], resolved["DdlArtifactsSchema"])


def applier(target: PostgresTarget, task: str, plans: list[Any], opts: Any) -> Any:
    from opendms.endpoints.postgres.apply import PgApplier

    return PgApplier(target.url, task, plans, opts.same, opts.form, opts.policies, opts.on_error)


PRIVILEGES = """
SELECT current_user, version(), current_schema(),
       has_database_privilege(current_database(), 'CREATE'),
       coalesce(has_schema_privilege(current_schema(), 'CREATE'), false),
       coalesce(has_schema_privilege(current_schema(), 'USAGE'), false)
"""


def check(url: EndpointURL, settings: dict[str, Any]) -> str:
    """Connect and report the user, server version and what the user may do."""
    settings = PG_SETTINGS.resolve(url, settings)
    conn = connect(url)
    try:
        user, version, schema, db_create, schema_create, usage = conn.execute(PRIVILEGES).fetchone()
    finally:
        conn.close()
    role = str(settings.get("role", "")).lower()
    if role == "target" and not (schema_create or db_create):
        raise PrivilegeError(
            str(url), f"user {user!r} may not create tables in schema {schema!r} (GRANT CREATE)"
        )
    if role == "source" and not usage:
        raise PrivilegeError(str(url), f"user {user!r} has no USAGE on schema {schema!r}")
    short = " ".join(version.split()[:2])
    return f"connected as {user} to {short}; create in {schema}: {'yes' if schema_create else 'no'}"
