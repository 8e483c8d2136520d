"""The SQLite engine: ``sqlite://`` endpoints (one database file each)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from opendms.endpoints.engine import ApplyOptions, Capabilities, Engine, QueryDialect
from opendms.endpoints.sqlite import database_path
from opendms.endpoints.sqlite.settings import SqliteSettings
from opendms.errors import DatabaseMissingError, EndpointError
from opendms.model import ColumnType, Kind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opendms.changes import Applier, ApplyPlan, ChangeSource
    from opendms.endpoints.base import EndpointURL, Source, Target
    from opendms.endpoints.ddldialect import DdlDialect
    from opendms.endpoints.schemaobjects import SourceCatalog
    from opendms.endpoints.sqlite.target import SQLiteTarget

__all__ = ["ENGINE", "SQLiteEngine"]


class SQLiteEngine(Engine):
    """A SQLite file as source (change tables written by triggers) and target. It has
    no schemas, and folds the case of table names."""

    name = "sqlite"
    title = "SQLite"
    schemes = ("sqlite",)
    capabilities = Capabilities(
        source=True, target=True, cdc_source=True, cdc_target=True, ddl_target=True, read_back=True
    )
    settings = SqliteSettings
    folds_names = True

    def connect(self, url: EndpointURL) -> Any:
        import sqlite3

        from opendms.endpoints.sqlite import database_path

        return sqlite3.connect(database_path(url), check_same_thread=False)

    def open_source(self, url: EndpointURL, settings: dict[str, Any]) -> Source:
        from opendms.endpoints.sqlite.source import SQLiteSource

        SqliteSettings.resolve(url, settings)
        path = database_path(url)
        if not Path(path).is_file():
            raise DatabaseMissingError(str(url), f"database file {path!r} does not exist")
        try:
            return SQLiteSource(url, path)
        except sqlite3.Error as exc:
            raise EndpointError(str(url), f"cannot open {path!r}: {exc}") from exc

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        from opendms.endpoints.sqlite.target import SQLiteTarget

        SqliteSettings.resolve(url, settings)
        path = database_path(url)
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            raise DatabaseMissingError(str(url), f"directory {str(parent)!r} does not exist")
        try:
            return SQLiteTarget(url, path)
        except sqlite3.Error as exc:
            raise EndpointError(str(url), f"cannot open {path!r}: {exc}") from exc

    def change_source(self, url: EndpointURL, task: str, settings: dict[str, Any]) -> ChangeSource:
        from opendms.endpoints.sqlite.changesource import SqliteChangeSource

        SqliteSettings.resolve(url, settings)
        return SqliteChangeSource(url, task)

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        from opendms.endpoints.sqlite.apply import SqliteApplier

        lite = cast("SQLiteTarget", target)
        return SqliteApplier(lite, task, plans, opts.policies, opts.on_error)

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        SqliteSettings.resolve(url, settings)
        path = database_path(url)
        if not Path(path).is_file():
            raise DatabaseMissingError(str(url), f"database file {path!r} does not exist")
        source = self.open_source(url, settings)
        try:
            count = len(source.list_tables())
        except sqlite3.DatabaseError as exc:
            raise EndpointError(str(url), f"{path!r} is not a SQLite database: {exc}") from exc
        finally:
            source.close()
        return f"SQLite database {path} ({count} tables)"

    def lossy(self, ctype: ColumnType) -> str | None:
        if ctype.kind in (Kind.TIMESTAMPTZ, Kind.INTERVAL, Kind.ARRAY, Kind.UUID):
            return f"{ctype} is stored as text in SQLite"
        return None

    def same_database(self, a: EndpointURL, b: EndpointURL) -> bool:
        """The same database file, however the URLs spell its path."""
        return _real_path(a) == _real_path(b)

    def table_identity(self, url: EndpointURL, schema: str, name: str) -> tuple[str, ...]:
        """SQLite has no schemas and folds the case of names."""
        return (name.casefold(),)

    def query_dialect(self) -> QueryDialect:
        """Dates, times and decimals are text or numbers by the value in SQLite, so only
        integers, floats and text are compared there; a value that does not fit its
        column is read as NULL, so only text and binary test NULL there."""
        kinds = frozenset({Kind.INT16, Kind.INT32, Kind.INT64, Kind.FLOAT64, Kind.STRING})
        return QueryDialect(
            self.ddl_dialect().sqlglot, kinds, frozenset({Kind.STRING, Kind.BINARY})
        )

    def ddl_dialect(self) -> DdlDialect:
        from opendms.endpoints.sqlite.ddldialect import DIALECT

        return DIALECT

    def source_catalog(self, url: EndpointURL, schemas: Sequence[str]) -> SourceCatalog:
        from opendms.endpoints.sqlite.schemacatalog import read_catalog

        return read_catalog(url, schemas)

    def capture_left_behind(self, task: str) -> list[str]:
        return [
            "the capture triggers and change table stay in the source database; "
            "pass --file TASK_FILE to drop them"
        ]


def _real_path(url: EndpointURL) -> str:
    return os.path.realpath(database_path(url))


ENGINE = SQLiteEngine()
