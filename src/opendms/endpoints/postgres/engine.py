"""The PostgreSQL engine: ``postgresql://`` and ``postgres://`` endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opendms.endpoints.engine import (
    ApplyOptions,
    Capabilities,
    ChecksumDialect,
    Engine,
    QueryDialect,
)
from opendms.endpoints.postgres.settings import PgSettings
from opendms.errors import PrivilegeError
from opendms.model import Kind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opendms.changes import Applier, ApplyPlan, ChangeSource
    from opendms.checks import Check
    from opendms.endpoints.base import EndpointURL, Source, Target
    from opendms.endpoints.ddldialect import DdlDialect
    from opendms.endpoints.schemaobjects import SourceCatalog
    from opendms.model import Table

__all__ = ["ENGINE", "PostgresEngine"]

PRIVILEGES = """
SELECT current_user, version(), current_schema(),
       has_database_privilege(current_database(), 'CREATE'),
       coalesce(has_schema_privilege(current_schema(), 'CREATE'), false),
       coalesce(has_schema_privilege(current_schema(), 'USAGE'), false)
"""


# Column kinds whose comparisons with literals PostgreSQL decides as DuckDB does.
_QUERY_KINDS = frozenset(
    {Kind.INT16, Kind.INT32, Kind.INT64, Kind.FLOAT64, Kind.DECIMAL}
    | {Kind.STRING, Kind.DATE, Kind.TIMESTAMP, Kind.BOOL}
)


class PostgresEngine(Engine):
    """PostgreSQL as source (ADBC reads, logical replication) and target (COPY)."""

    name = "postgres"
    title = "PostgreSQL"
    schemes = ("postgresql", "postgres")
    capabilities = Capabilities(
        source=True,
        target=True,
        cdc_source=True,
        cdc_target=True,
        raw_copy=True,
        ddl_target=True,
        read_back=True,
        parallel_writers=True,
        tablespaces=True,
    )
    settings = PgSettings
    default_port = 5432

    def open_source(self, url: EndpointURL, settings: dict[str, Any]) -> Source:
        from opendms.endpoints.postgres.source import PostgresSource

        PgSettings.resolve(url, settings)
        return PostgresSource(url)

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        from opendms.endpoints.postgres.target import PostgresTarget

        PgSettings.resolve(url, settings)
        return PostgresTarget(url)

    def change_source(self, url: EndpointURL, task: str, settings: dict[str, Any]) -> ChangeSource:
        """The task's capture: CaptureDdls and DdlArtifactsSchema decide DDL capture."""
        from opendms.endpoints.postgres.changesource import PgChangeSource

        resolved = PgSettings.resolve(url, settings)
        return PgChangeSource(url, task, resolved.CaptureDdls, resolved.DdlArtifactsSchema)

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        from opendms.endpoints.postgres.apply import PgApplier

        return PgApplier(
            target.url, task, plans, opts.same, opts.form, opts.policies, opts.on_error
        )

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        """Connect and report the user, server version and what the user may do."""
        from opendms.endpoints.postgres.conn import connect

        role = PgSettings.resolve(url, settings).role.lower()
        conn = connect(url)
        try:
            row = conn.execute(PRIVILEGES).fetchone()
        finally:
            conn.close()
        user, version, schema, db_create, schema_create, usage = row
        if role == "target" and not (schema_create or db_create):
            raise PrivilegeError(
                str(url), f"user {user!r} may not create tables in schema {schema!r} (GRANT CREATE)"
            )
        if role == "source" and not usage:
            raise PrivilegeError(str(url), f"user {user!r} has no USAGE on schema {schema!r}")
        short = " ".join(version.split()[:2])
        create = "yes" if schema_create else "no"
        return f"connected as {user} to {short}; create in {schema}: {create}"

    def source_checks(
        self, url: EndpointURL, tables: list[Table], cdc: bool, settings: dict[str, Any]
    ) -> list[Check]:
        from opendms.endpoints.postgres.assess import source_checks

        return source_checks(url, tables, cdc, settings)

    def target_checks(
        self, url: EndpointURL, settings: dict[str, Any], existing: list[str]
    ) -> list[Check]:
        from opendms.endpoints.postgres.assess import target_checks

        return target_checks(url, existing)

    def domains(self, url: EndpointURL) -> dict[str, str]:
        from opendms.endpoints.postgres.assess import domains

        return domains(url)

    def checksum_dialect(self) -> ChecksumDialect:
        from opendms.endpoints.postgres.checksum import CHECKSUMS

        return CHECKSUMS

    def connect(self, url: EndpointURL) -> Any:
        from opendms.endpoints.postgres.conn import connect

        return connect(url)

    def query_dialect(self) -> QueryDialect:
        """Text compares by the column's collation, so only text equality and LIKE are
        pushed (the query decides that); ``real`` is left out (its comparison with a
        numeric literal widens the column, DuckDB narrows the literal)."""
        return QueryDialect(self.ddl_dialect().sqlglot, _QUERY_KINDS, frozenset(Kind))

    def ddl_dialect(self) -> DdlDialect:
        from opendms.endpoints.postgres.ddldialect import DIALECT

        return DIALECT

    def source_catalog(self, url: EndpointURL, schemas: Sequence[str]) -> SourceCatalog:
        from opendms.endpoints.postgres.schemacatalog import read_catalog

        return read_catalog(url, schemas)

    def capture_left_behind(self, task: str) -> list[str]:
        from opendms.endpoints.postgres.changesource import replication_names

        slot, publication = replication_names(task)
        return [
            f"replication slot {slot!r} and publication {publication!r} stay on "
            "the source and keep its WAL, and so do the DDL-capture objects (event "
            "triggers opendms_intercept_ddl/_drop, opendms_ddl_* tables); pass --file "
            f"TASK_FILE to drop them, or run SELECT pg_drop_replication_slot('{slot}'); "
            f"DROP PUBLICATION {publication};"
        ]


ENGINE = PostgresEngine()
