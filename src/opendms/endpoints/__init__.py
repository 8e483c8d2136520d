"""The endpoint registry: one explicit list of URL schemes and their engines.

Each engine package exposes ``open_source(url, settings)``,
``open_target(url, settings)`` and ``check(url, settings)``; packages are
imported only when their scheme is used, so heavy drivers stay optional.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from opendms.cdc import Applier, ApplyPlan, ChangeSource
from opendms.endpoints.base import EndpointURL, Source, Target
from opendms.errors import UnknownSchemeError


@dataclass(frozen=True)
class Engine:
    """A registered endpoint engine and what it can be used for."""

    module: str
    can_source: bool
    can_target: bool


REGISTRY: dict[str, Engine] = {
    "postgresql": Engine("opendms.endpoints.postgres", True, True),
    "postgres": Engine("opendms.endpoints.postgres", True, True),
    "mysql": Engine("opendms.endpoints.mysql", True, True),
    "mariadb": Engine("opendms.endpoints.mysql", True, True),
    "sqlite": Engine("opendms.endpoints.sqlite", True, True),
    "file": Engine("opendms.endpoints.lake", False, True),
    "s3": Engine("opendms.endpoints.lake", False, True),
}


def engine_for(url: EndpointURL, role: str = "") -> ModuleType:
    """The engine module for ``url``, or a clear error listing the known schemes."""
    engine = REGISTRY.get(url.scheme)
    if engine is None:
        known = ", ".join(sorted(REGISTRY))
        close = difflib.get_close_matches(url.scheme, REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownSchemeError(str(url), f"unknown scheme {url.scheme!r}.{hint} Known: {known}")
    if role == "source" and not engine.can_source:
        raise UnknownSchemeError(str(url), f"{url.scheme}:// endpoints can only be targets")
    return importlib.import_module(engine.module)


def open_source(url: str, settings: dict[str, Any] | None = None) -> Source:
    parsed = EndpointURL.parse(url)
    return cast(Source, engine_for(parsed, "source").open_source(parsed, settings or {}))


def open_target(url: str, settings: dict[str, Any] | None = None) -> Target:
    parsed = EndpointURL.parse(url)
    return cast(Target, engine_for(parsed, "target").open_target(parsed, settings or {}))


def open_capture(
    url: EndpointURL, task: str, settings: dict[str, Any] | None = None
) -> ChangeSource:
    """The change source of a CDC task on ``url`` with the source endpoint's settings,
    or a clear error for engines without one."""
    module = engine_for(url, "source")
    if not hasattr(module, "change_source"):
        raise UnknownSchemeError(str(url), f"{url.scheme}:// sources cannot capture changes")
    return cast(ChangeSource, module.change_source(url, task, settings or {}))


@dataclass(frozen=True)
class ApplyOptions:
    """``form``: of the values the changes carry ("pg-text" only PostgreSQL ->
    PostgreSQL); ``same``: source and target are one engine; ``policies``: the apply
    error policies per operation; ``on_error(table, op, key, message)``: a skipped change."""

    form: str = "python"
    same: bool = False
    policies: dict[str, str] | None = None
    on_error: Callable[[str, Any, str, str], None] | None = None


def open_applier(target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions) -> Applier:
    """The applier of CDC batches for an open target."""
    module = engine_for(target.url, "target")
    return cast(Applier, module.applier(target, task, plans, opts))


def check_endpoint(url: str, settings: dict[str, Any] | None = None) -> str:
    """DMS "test connection": a one-line success description, or an EndpointError."""
    parsed = EndpointURL.parse(url)
    return cast(str, engine_for(parsed).check(parsed, settings or {}))


def same_engine(scheme_a: str, scheme_b: str) -> bool:
    """True when both schemes name the same engine (``postgres`` and ``postgresql``)."""
    a, b = REGISTRY.get(scheme_a), REGISTRY.get(scheme_b)
    return a is not None and b is not None and a.module == b.module


def same_database(a: EndpointURL, b: EndpointURL) -> bool:
    """True when two endpoint URLs can hold the same tables: the same SQLite file, the
    same PostgreSQL database, or the same MySQL server (whose databases are schemas)."""
    if not same_engine(a.scheme, b.scheme):
        return False
    if a.scheme == "sqlite":
        return _sqlite_file(a) == _sqlite_file(b)
    if _module(a) == _MYSQL:
        return _server(a) == _server(b)
    return (*_server(a), a.database) == (*_server(b), b.database)


def table_identity(url: EndpointURL, schema: str, name: str) -> tuple[str, ...]:
    """Where table ``schema.name`` lives on endpoint ``url``, normalised as the engine
    resolves it: SQLite has no schemas and folds case, a MySQL URL with a database puts
    every table there, PostgreSQL and lakes keep (schema, name)."""
    if url.scheme == "sqlite":
        return (name.casefold(),)
    if _module(url) == _MYSQL:
        return (url.database or schema, name)
    return (schema, name)


_MYSQL = "opendms.endpoints.mysql"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})
_DEFAULT_PORTS = {"opendms.endpoints.postgres": 5432, _MYSQL: 3306}


def _module(url: EndpointURL) -> str:
    engine = REGISTRY.get(url.scheme)
    return engine.module if engine else ""


def _server(url: EndpointURL) -> tuple[str, int | None]:
    host = "localhost" if url.host in _LOCAL_HOSTS else url.host.lower()
    return host, url.port or _DEFAULT_PORTS.get(_module(url))


def _sqlite_file(url: EndpointURL) -> str:
    from opendms.endpoints.sqlite import database_path

    return os.path.realpath(database_path(url))
