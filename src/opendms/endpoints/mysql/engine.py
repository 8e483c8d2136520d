"""The MySQL/MariaDB engine: ``mysql://`` and ``mariadb://`` endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from opendms.endpoints.engine import (
    ApplyOptions,
    Capabilities,
    ChecksumDialect,
    Engine,
    QueryDialect,
)
from opendms.endpoints.mysql.settings import MySqlSettings
from opendms.errors import PrivilegeError
from opendms.model import Kind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opendms.changes import Applier, ApplyPlan, ChangeSource
    from opendms.checks import Check
    from opendms.endpoints.base import EndpointURL, Source, Target
    from opendms.endpoints.ddldialect import DdlDialect
    from opendms.endpoints.mysql.target import MySQLTarget
    from opendms.endpoints.schemaobjects import SourceCatalog
    from opendms.model import ColumnType, Table

__all__ = ["ENGINE", "MySQLEngine"]


# Column kinds whose comparisons with literals MySQL decides as DuckDB does (or with
# more rows: text compares without case and trailing spaces; the query pushes only
# text equality and LIKE).
_QUERY_KINDS = frozenset(
    {Kind.INT16, Kind.INT32, Kind.INT64, Kind.FLOAT64, Kind.DECIMAL}
    | {Kind.STRING, Kind.DATE, Kind.TIMESTAMP}
)


class MySQLEngine(Engine):
    """MySQL and MariaDB as source (connectorx reads, the binlog) and target
    (LOAD DATA LOCAL INFILE). A server's databases are its schemas."""

    name = "mysql"
    title = "MySQL/MariaDB"
    schemes = ("mysql", "mariadb")
    capabilities = Capabilities(
        source=True,
        target=True,
        cdc_source=True,
        cdc_target=True,
        ddl_target=True,
        read_back=True,
        parallel_writers=True,
    )
    settings = MySqlSettings
    default_port = 3306

    def open_source(self, url: EndpointURL, settings: dict[str, Any]) -> Source:
        from opendms.endpoints.mysql.source import MySQLSource

        MySqlSettings.resolve(url, settings)
        return MySQLSource(url)

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        from opendms.endpoints.mysql.target import MySQLTarget

        MySqlSettings.resolve(url, settings)
        return MySQLTarget(url)

    def change_source(self, url: EndpointURL, task: str, settings: dict[str, Any]) -> ChangeSource:
        from opendms.endpoints.mysql.changesource import MySqlChangeSource

        MySqlSettings.resolve(url, settings)
        return MySqlChangeSource(url, task)

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        from opendms.endpoints.mysql.apply import MySqlApplier

        mysql = cast("MySQLTarget", target)
        return MySqlApplier(mysql, task, plans, opts.policies, opts.on_error)

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        """Connect and report user, version and the privileges a task needs."""
        from opendms.endpoints.mysql.conn import connect

        role = MySqlSettings.resolve(url, settings).role.lower()
        conn = connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER(), VERSION()")
                user, version = cur.fetchone()
                cur.execute("SHOW GRANTS")
                grants = " ".join(r[0] for r in cur.fetchall()).upper()
                cur.execute("SELECT @@local_infile")
                local_infile = bool(cur.fetchone()[0])
        finally:
            conn.close()
        every = "ALL PRIVILEGES" in grants
        if role == "target" and not every and "CREATE" not in grants:
            raise PrivilegeError(str(url), f"user {user} may not create tables (GRANT CREATE)")
        if role == "source" and not every and "SELECT" not in grants:
            raise PrivilegeError(str(url), f"user {user} may not read tables (GRANT SELECT)")
        infile = "on" if local_infile else "off"
        return f"connected as {user} to MySQL/MariaDB {version}; local_infile {infile}"

    def same_database(self, a: EndpointURL, b: EndpointURL) -> bool:
        """A MySQL server's databases are schemas: one server holds them all."""
        return self.server(a) == self.server(b)

    def table_identity(self, url: EndpointURL, schema: str, name: str) -> tuple[str, ...]:
        """A URL with a database puts every table there."""
        return (url.database or schema, name)

    folds_names = True

    def source_checks(
        self, url: EndpointURL, tables: list[Table], cdc: bool, settings: dict[str, Any]
    ) -> list[Check]:
        from opendms.endpoints.mysql.assess import source_checks

        return source_checks(url, tables, cdc)

    def target_checks(
        self, url: EndpointURL, settings: dict[str, Any], existing: list[str]
    ) -> list[Check]:
        from opendms.endpoints.mysql.assess import target_checks

        return target_checks(url, existing)

    def lossy(self, ctype: ColumnType) -> str | None:
        """What a MySQL/MariaDB target changes (a MySQL source's own types come back as
        they were)."""
        if ctype.native is not None:
            return None
        kind = ctype.kind
        if kind is Kind.BOOL:
            return "boolean becomes TINYINT(1): it reads back as the integers 1 and 0"
        if kind is Kind.TIMESTAMPTZ:
            return "timestamptz becomes DATETIME holding UTC (the zone offset is not kept)"
        if kind is Kind.INTERVAL:
            return "interval becomes VARCHAR(100) ISO 8601 text"
        if kind is Kind.ARRAY:
            return "array becomes a JSON array"
        if kind is Kind.DECIMAL and (ctype.precision is None or ctype.precision > 65):
            return "numeric beyond 65 digits becomes DECIMAL(65,30): wider values are data errors"
        return None

    def checksum_dialect(self) -> ChecksumDialect:
        from opendms.endpoints.mysql.checksum import CHECKSUMS

        return CHECKSUMS

    def connect(self, url: EndpointURL) -> Any:
        from opendms.endpoints.mysql.conn import connect

        return connect(url)

    def query_dialect(self) -> QueryDialect:
        """Booleans (any non-zero ``tinyint(1)``) and zero dates (read as NULL but not
        NULL on the server) keep their tests in DuckDB."""
        dated = {Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ}
        return QueryDialect(self.ddl_dialect().sqlglot, _QUERY_KINDS, frozenset(Kind) - dated)

    def ddl_dialect(self) -> DdlDialect:
        from opendms.endpoints.mysql.ddldialect import DIALECT

        return DIALECT

    def source_catalog(self, url: EndpointURL, schemas: Sequence[str]) -> SourceCatalog:
        from opendms.endpoints.mysql.schemacatalog import read_catalog

        return read_catalog(url, schemas)


ENGINE = MySQLEngine()
