"""SQLite endpoint: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.settings import SettingsSpec
from opendms.endpoints.sqlite.source import SQLiteSource
from opendms.endpoints.sqlite.target import SQLiteTarget
from opendms.errors import DatabaseMissingError, EndpointError


def database_path(url: EndpointURL) -> str:
    """The file path of a sqlite URL (``sqlite:///a.db`` is relative, four slashes absolute)."""
    path = url.path[1:] if url.path.startswith("/") else url.path
    if url.host:
        path = f"{url.host}/{path}"
    if not path:
        raise EndpointError(str(url), "no database file in the URL (sqlite:///path/to/file.db)")
    return path


SQLITE_SETTINGS = SettingsSpec(engine="SQLite", applied={"role": str})


def open_source(url: EndpointURL, settings: dict[str, Any]) -> SQLiteSource:
    SQLITE_SETTINGS.resolve(url, settings)
    path = database_path(url)
    if not Path(path).is_file():
        raise DatabaseMissingError(str(url), f"database file {path!r} does not exist")
    try:
        return SQLiteSource(url, path)
    except sqlite3.Error as exc:
        raise EndpointError(str(url), f"cannot open {path!r}: {exc}") from exc


def open_target(url: EndpointURL, settings: dict[str, Any]) -> SQLiteTarget:
    SQLITE_SETTINGS.resolve(url, settings)
    path = database_path(url)
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise DatabaseMissingError(str(url), f"directory {str(parent)!r} does not exist")
    try:
        return SQLiteTarget(url, path)
    except sqlite3.Error as exc:
        raise EndpointError(str(url), f"cannot open {path!r}: {exc}") from exc


def change_source(url: EndpointURL, task: str, settings: dict[str, Any]) -> Any:
    SQLITE_SETTINGS.resolve(url, settings)
    from opendms.endpoints.sqlite.capture import SqliteCapture

    return SqliteCapture(url, task)


def applier(target: SQLiteTarget, task: str, plans: list[Any], opts: Any) -> Any:
    from opendms.endpoints.sqlite.apply import SqliteApplier

    return SqliteApplier(target, task, plans, opts.policies, opts.on_error)


def check(url: EndpointURL, settings: dict[str, Any]) -> str:
    SQLITE_SETTINGS.resolve(url, settings)
    path = database_path(url)
    if not Path(path).is_file():
        raise DatabaseMissingError(str(url), f"database file {path!r} does not exist")
    source = open_source(url, settings)
    try:
        count = len(source.list_tables())
    except sqlite3.DatabaseError as exc:
        raise EndpointError(str(url), f"{path!r} is not a SQLite database: {exc}") from exc
    finally:
        source.close()
    return f"SQLite database {path} ({count} tables)"
