"""The engines schema conversion works with, asked of the endpoint registry: their DDL
dialects (``Engine.ddl_dialect()``) and the full source catalog they read
(``Engine.source_catalog()``)."""

from __future__ import annotations

from collections.abc import Sequence

from opendms.endpoints import engines
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.ddldialect import DdlDialect
from opendms.endpoints.schemaobjects import SourceCatalog
from opendms.errors import ConfigError, EndpointError, OpenDMSError

__all__ = ["dialect_for", "dialects", "read_catalog", "target_dialect"]


def dialects() -> list[DdlDialect]:
    """The DDL dialect of every registered engine that has one, in registry order."""
    out: list[DdlDialect] = []
    for engine in dict.fromkeys(engines().values()):
        dialect = engine.ddl_dialect()
        if dialect is not None:
            out.append(dialect)
    return out


def dialect_for(name: str) -> DdlDialect:
    """The dialect called ``name`` (a dialect name or a URL scheme of its engine)."""
    wanted = name.lower()
    dialect = _dialect_of_scheme(wanted)
    if dialect is not None:
        return dialect
    for known in dialects():
        if known.name == wanted:
            return known
    names = ", ".join(d.name for d in dialects())
    raise ConfigError(f"unknown target engine {name!r} (use {names})")


def _dialect_of_scheme(scheme: str) -> DdlDialect | None:
    engine = engines().get(scheme)
    return engine.ddl_dialect() if engine is not None else None


def _schemes() -> str:
    return ", ".join(f"{s}://" for s, e in engines().items() if e.ddl_dialect() is not None)


def target_dialect(url: EndpointURL) -> DdlDialect:
    """The dialect of a target database URL, or a clear error."""
    dialect = _dialect_of_scheme(url.scheme)
    if dialect is None:
        raise ConfigError(
            f"target {url}: cannot run converted DDL on {url.scheme}:// ({_schemes()})"
        )
    return dialect


def read_catalog(url: EndpointURL, schemas: Sequence[str] = ()) -> SourceCatalog:
    """Everything ``convert`` needs from the source ``url`` (all user schemas by default)."""
    engine = engines().get(url.scheme)
    try:
        catalog = engine.source_catalog(url, schemas) if engine is not None else None
    except OpenDMSError:
        raise
    except Exception as exc:
        text = str(exc).replace(str(url.password), "***") if url.password else str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise EndpointError(str(url), f"cannot read the catalog: {first}") from exc
    if catalog is None:
        raise ConfigError(f"source {url}: cannot convert from {url.scheme}:// (use {_schemes()})")
    return catalog
