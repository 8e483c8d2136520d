"""The interfaces every endpoint engine implements.

A *source* lists and describes tables and reads them under one consistent
snapshot; a *target* prepares tables, takes Arrow batches and finishes tables
(secondary indexes after the data). Both are created from an
:class:`EndpointURL` by the registry in :mod:`opendms.endpoints`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import pyarrow as pa

from opendms.errors import ConfigError
from opendms.model import ReadPlan, Table, TableRef


class Secret(str):
    """A string that never shows itself in repr, logs or errors."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class EndpointURL:
    """A parsed endpoint URL; ``str()`` masks the password."""

    raw: str = field(repr=False)
    scheme: str
    host: str = ""
    port: int | None = None
    user: str = ""
    password: Secret = field(default=Secret(""), repr=False)
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> EndpointURL:
        parts = urlsplit(url)
        if not parts.scheme:
            raise ConfigError(f"endpoint {url!r} is not a URL (expected scheme://...)")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"endpoint {mask(url)}: bad port") from exc
        return cls(
            raw=url,
            scheme=parts.scheme.lower(),
            host=parts.hostname or "",
            port=port,
            user=unquote(parts.username or ""),
            password=Secret(unquote(parts.password or "")),
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        )

    def __str__(self) -> str:
        return mask(self.raw)

    @property
    def database(self) -> str:
        return self.path.lstrip("/")


def mask(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{netloc[1]}").geturl()


class PrepMode(enum.StrEnum):
    """DMS TargetTablePrepMode."""

    DROP_AND_CREATE = "DROP_AND_CREATE"
    TRUNCATE_BEFORE_LOAD = "TRUNCATE_BEFORE_LOAD"
    DO_NOTHING = "DO_NOTHING"


class Source(Protocol):
    """Reads tables. ``snapshot()`` pins one consistent view for all readers."""

    url: EndpointURL

    def list_tables(self) -> list[TableRef]: ...

    def describe(self, ref: TableRef) -> Table: ...

    def snapshot(self) -> AbstractContextManager[str | None]: ...

    def read(self, plan: ReadPlan, snapshot: str | None) -> Iterator[pa.RecordBatch]: ...

    def close(self) -> None: ...


class BatchWriter(Protocol):
    """Writes the batches of one table (or one segment of it)."""

    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> int: ...

    def abort(self) -> None: ...


class Target(Protocol):
    """Creates tables and loads Arrow batches into them."""

    url: EndpointURL

    def prepare(self, table: Table, mode: PrepMode) -> None: ...

    def writer(self, table: Table, segment: int | None) -> BatchWriter: ...

    def finish(self, table: Table) -> None: ...

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]: ...

    def close(self) -> None: ...


class Checker(Protocol):
    """DMS "test connection": raises an EndpointError subclass on failure."""

    def __call__(self, url: EndpointURL) -> str: ...


@dataclass(frozen=True)
class Rejection:
    """One row a target cannot hold without altering a value."""

    row: int
    column: str
    reason: str


def no_rejections(table: Table, batch: pa.RecordBatch) -> list[Rejection]:
    """For targets that can hold every canonical value."""
    return []
