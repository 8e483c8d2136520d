"""Reading the full source catalog of the selected schemas, per engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opendms.convert.objects import SourceCatalog
from opendms.endpoints import engines
from opendms.endpoints.base import EndpointURL
from opendms.errors import ConfigError, EndpointError, OpenDMSError

ENGINES = {"postgres": "postgresql", "mysql": "mysql", "sqlite": "sqlite"}


_KNOWN = "postgresql://, mysql://, mariadb://, sqlite://"


def _engine(url: EndpointURL) -> str | None:
    engine = engines().get(url.scheme)
    return ENGINES.get(engine.name) if engine else None


def source_engine(url: EndpointURL) -> str:
    """``postgresql``, ``mysql`` or ``sqlite`` for a source URL, or a clear error."""
    name = _engine(url)
    if name is None:
        raise ConfigError(f"source {url}: cannot convert from {url.scheme}:// (use {_KNOWN})")
    return name


def target_engine_of(url: EndpointURL) -> str:
    """``postgresql``, ``mysql`` or ``sqlite`` for a target database URL, or a clear error."""
    name = _engine(url)
    if name is None:
        raise ConfigError(f"target {url}: cannot run converted DDL on {url.scheme}:// ({_KNOWN})")
    return name


def read_catalog(url: EndpointURL, schemas: Sequence[str] = ()) -> SourceCatalog:
    """Everything ``convert`` needs from the source ``url`` (all user schemas by default)."""
    engine = source_engine(url)
    reader = {"postgresql": _read_pg, "mysql": _read_mysql, "sqlite": _read_sqlite}[engine]
    catalog = SourceCatalog(engine, str(url), list(schemas))
    try:
        reader(url, catalog)
    except OpenDMSError:
        raise
    except Exception as exc:
        text = str(exc).replace(str(url.password), "***") if url.password else str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise EndpointError(str(url), f"cannot read the catalog: {first}") from exc
    return catalog


def _read_pg(url: EndpointURL, catalog: SourceCatalog) -> None:
    from opendms.convert import pgcatalog
    from opendms.endpoints.postgres.conn import connect, translate

    conn = connect(url)
    try:
        if not catalog.schemas:
            catalog.schemas = pgcatalog.default_schemas(conn)
        _check_schemas(url, catalog, _pg_schemas(conn))
        pgcatalog.read(conn, catalog)
    except Exception as exc:
        if isinstance(exc, OpenDMSError):
            raise
        raise translate(exc, url) from exc
    finally:
        conn.close()


def _pg_schemas(conn: Any) -> set[str]:
    return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace").fetchall()}


def _read_mysql(url: EndpointURL, catalog: SourceCatalog) -> None:
    from opendms.convert import mycatalog
    from opendms.endpoints.mysql.conn import connect, translate

    conn = connect(url)
    try:
        if not catalog.schemas:
            catalog.schemas = mycatalog.default_schemas(conn, url.database)
        with conn.cursor() as cur:
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            known = {r[0] for r in cur.fetchall()}
        _check_schemas(url, catalog, known)
        mycatalog.read(conn, catalog)
    except Exception as exc:
        if isinstance(exc, OpenDMSError):
            raise
        raise translate(exc, url) from exc
    finally:
        conn.close()


def _read_sqlite(url: EndpointURL, catalog: SourceCatalog) -> None:
    from opendms.convert import litecatalog

    litecatalog.read(url, catalog)


def _check_schemas(url: EndpointURL, catalog: SourceCatalog, known: set[str]) -> None:
    missing = [s for s in catalog.schemas if s not in known]
    if missing:
        raise ConfigError(f"source {url}: schema {missing[0]!r} does not exist")
