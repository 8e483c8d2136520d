"""The endpoint registry: the engines opendms knows, and opening endpoints by URL.

:data:`ENGINES` lists one module per engine package, each defining ``ENGINE`` (an
:class:`~opendms.endpoints.engine.Engine`); adding an engine is its package plus one
line here. :func:`register` adds an engine module from outside the product (a test
suite's own engine) with one call. Engine modules import their drivers only when used,
so heavy drivers stay optional extras.
"""

from __future__ import annotations

import difflib
import importlib
from functools import cache
from typing import Any

from opendms.changes import Applier, ApplyPlan, ChangeSource
from opendms.endpoints.base import EndpointURL, Source, Target
from opendms.endpoints.engine import ApplyOptions, Engine
from opendms.errors import UnknownSchemeError

__all__ = [
    "ENGINES",
    "ApplyOptions",
    "Engine",
    "check_endpoint",
    "engine_for",
    "engines",
    "open_applier",
    "open_change_source",
    "open_source",
    "open_target",
    "register",
    "same_database",
    "same_engine",
    "table_identity",
]

ENGINES: tuple[str, ...] = (
    "opendms.endpoints.postgres.engine",
    "opendms.endpoints.mysql.engine",
    "opendms.endpoints.sqlite.engine",
    "opendms.endpoints.lake.engine",
    "opendms.endpoints.dynamodb.engine",
    "opendms.endpoints.natsjs.engine",
    "opendms.endpoints.redisstreams.engine",
)
"""The engine modules, one line per engine."""

_REGISTERED: list[str] = []


def register(module: str) -> None:
    """Register the engine of ``module`` (which defines ``ENGINE``) besides the product's
    :data:`ENGINES`, from now on in this process: how tests add an engine of their own."""
    if module not in ENGINES and module not in _REGISTERED:
        _REGISTERED.append(module)
        engines.cache_clear()


@cache
def engines() -> dict[str, Engine]:
    """Every registered engine by each of its URL schemes."""
    out: dict[str, Engine] = {}
    for module in (*ENGINES, *_REGISTERED):
        engine: Engine = importlib.import_module(module).ENGINE
        for scheme in engine.schemes:
            out[scheme] = engine
    return out


def engine_for(url: EndpointURL, role: str = "") -> Engine:
    """The engine of ``url``, or a clear error listing the known schemes (``role``
    "source": also an error when the engine cannot be a source)."""
    known = engines()
    engine = known.get(url.scheme)
    if engine is None:
        names = ", ".join(sorted(known))
        close = difflib.get_close_matches(url.scheme, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownSchemeError(str(url), f"unknown scheme {url.scheme!r}.{hint} Known: {names}")
    if role == "source" and not engine.capabilities.source:
        raise UnknownSchemeError(str(url), f"{url.scheme}:// endpoints can only be targets")
    return engine


def open_source(url: str, settings: dict[str, Any] | None = None) -> Source:
    parsed = EndpointURL.parse(url)
    return engine_for(parsed, "source").open_source(parsed, settings or {})


def open_target(
    url: str, settings: dict[str, Any] | None = None, task: str | None = None
) -> Target:
    """The target on ``url`` (``task``: the task it serves, see ``Engine.open_target``)."""
    parsed = EndpointURL.parse(url)
    return engine_for(parsed, "target").open_target(parsed, settings or {}, task)


def open_change_source(
    url: EndpointURL, task: str, settings: dict[str, Any] | None = None
) -> ChangeSource:
    """The change source of a CDC task on ``url`` with the source endpoint's settings,
    or a clear error for engines without one."""
    return engine_for(url, "source").change_source(url, task, settings or {})


def open_applier(target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions) -> Applier:
    """The applier of CDC batches for an open target."""
    return engine_for(target.url, "target").applier(target, task, plans, opts)


def check_endpoint(url: str, settings: dict[str, Any] | None = None) -> str:
    """DMS "test connection": a one-line success description, or an EndpointError."""
    parsed = EndpointURL.parse(url)
    return engine_for(parsed).check(parsed, settings or {})


def same_engine(scheme_a: str, scheme_b: str) -> bool:
    """True when both schemes name the same engine (``postgres`` and ``postgresql``)."""
    known = engines()
    a, b = known.get(scheme_a), known.get(scheme_b)
    return a is not None and a is b


def same_database(a: EndpointURL, b: EndpointURL) -> bool:
    """True when two endpoint URLs can hold the same tables (the engine decides: the
    same SQLite file, the same PostgreSQL database, the same MySQL server)."""
    return same_engine(a.scheme, b.scheme) and engine_for(a).same_database(a, b)


def table_identity(url: EndpointURL, schema: str, name: str) -> tuple[str, ...]:
    """Where table ``schema.name`` lives on endpoint ``url``, normalised as its engine
    resolves names."""
    return engine_for(url).table_identity(url, schema, name)
