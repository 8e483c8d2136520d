"""The interfaces every endpoint engine implements.

A *source* lists and describes tables and reads them under one consistent
snapshot; a *target* prepares tables, takes Arrow batches and finishes tables
(secondary indexes after the data). Both are created from an
:class:`EndpointURL` by the registry in :mod:`opendms.endpoints`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc

from opendms.errors import ConfigError
from opendms.model import Kind, ReadPlan, Table, TableRef


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
        url = _normalized(url)
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # an unbalanced '[' (IPv6 host), a bad character
            raise ConfigError(f"endpoint {mask(url)!r} is not a valid URL: {exc}") from None
        if not parts.scheme:
            raise ConfigError(f"endpoint {mask(url)!r} is not a URL (expected scheme://...)")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(
                f"endpoint {mask(url)}: bad port (percent-encode reserved characters "
                "such as '#', '/', '?' or '@' in the password)"
            ) from exc
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


# Query keys whose values are secrets (password, sslpassword, aws_secret_access_key, ...).
_SECRET_QUERY = re.compile(r"([?&;][^=&#?;]*(?:password|secret|token)[^=&#?;]*=)([^&#;]*)", re.I)


def _split_userinfo(url: str) -> tuple[str, str, str, bool] | None:
    """``(scheme://, userinfo, host-and-rest, unencoded)``, or None without userinfo.

    The userinfo ends at the last '@' before the host. A password with an unencoded
    '#', '/' or '?' hides that '@' from urlsplit; such URLs are split here and
    ``unencoded`` is True (their userinfo is taken literally).
    """
    head, sep, rest = url.partition("://")
    head, rest = (head + sep, rest) if sep else ("", url)
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in netloc:
        userinfo = netloc.rpartition("@")[0]
        return head, userinfo, rest[len(userinfo) + 1 :], False
    if not _hides_userinfo(netloc, rest[len(netloc) :]):
        return None
    first = rest.index("@", len(netloc))
    ends = [i for i in (rest.find("/", first), rest.find("?", first)) if i != -1]
    at = rest.rindex("@", 0, min(ends, default=len(rest)))
    return head, rest[:at], rest[at + 1 :], True


def _hides_userinfo(netloc: str, tail: str) -> bool:
    """Whether ``netloc`` (no '@') + ``tail`` is ``user:pass...@host`` cut short by urlsplit."""
    if ":" not in netloc or "@" not in tail or netloc.startswith("["):
        return False
    if not netloc.partition(":")[2].isdigit():
        return True  # "user:p" would be a host with a bad port
    at, query, frag = tail.index("@"), tail.find("?"), tail.find("#")
    if -1 < frag < at:
        return True  # an '@' in the fragment
    if -1 < query < at and "=" in tail[query:at]:
        return False  # "?application_name=a@b" is a query
    return "/" in tail[at:]  # "user:12/x@host/db", "user:12?x@host/db"


def _normalized(url: str) -> str:
    """``url`` with its user and password percent-encoded, so every parser agrees."""
    found = _split_userinfo(url)
    if found is None or ":" not in found[1]:
        return url
    head, userinfo, tail, unencoded = found
    user, _, password = userinfo.partition(":")
    if not unencoded:
        user, password = unquote(user), unquote(password)
    return f"{head}{quote(user, safe='')}:{quote(password, safe='')}@{tail}"


def mask(url: str) -> str:
    """``url`` with any password (in the userinfo or the query) replaced by ``***``."""
    found = _split_userinfo(url)
    if found is not None and ":" in found[1]:
        head, userinfo, tail, _ = found
        url = f"{head}{userinfo.partition(':')[0]}:***@{tail}"
    return _SECRET_QUERY.sub(r"\1***", url)


def target_index_name(table: str, index: str) -> str:
    """The target name of ``index`` of ``table``: prefixed with the table name.

    MySQL index names are per table, PostgreSQL's per schema and SQLite's per
    database, so ``email`` on tables ``a`` and ``b`` becomes ``a_email``, ``b_email``.
    """
    return index if index.startswith(table) and index != table else f"{table}_{index}"


class PrepMode(enum.StrEnum):
    """DMS TargetTablePrepMode."""

    DROP_AND_CREATE = "DROP_AND_CREATE"
    TRUNCATE_BEFORE_LOAD = "TRUNCATE_BEFORE_LOAD"
    DO_NOTHING = "DO_NOTHING"


class Source(Protocol):
    """Reads tables. ``snapshot()`` pins one consistent view for all readers."""

    url: EndpointURL

    def list_tables(self) -> list[TableRef]: ...

    def list_views(self) -> list[TableRef]:
        """The source's views (asked only when a selection rule's table-type is
        ``view`` or ``all``)."""

    def describe(self, ref: TableRef) -> Table: ...

    def snapshot(self) -> AbstractContextManager[str | None]: ...

    def snapshot_alive(self, snapshot: str) -> bool:
        """Whether readers can still read under ``snapshot`` (sources without shared
        snapshots never hand one out)."""

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

    def writer(self, table: Table, segment: int | str | None) -> BatchWriter: ...

    def finish(self, table: Table) -> None: ...

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]: ...

    def drop_table(self, table: Table) -> None:
        """The source table was dropped during CDC (nothing when already gone)."""

    def rename_table(self, old: Table, new: Table) -> None:
        """The source table was renamed during CDC (nothing when already done)."""

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


def too_long(table: Table, batch: pa.RecordBatch, longest: int | None = None) -> list[Rejection]:
    """Rows whose text is longer than its ``varchar(n)`` / ``char(n)`` column holds.

    Columns declared longer than ``longest`` (if given) are ignored: the target
    stores them in an unbounded type.
    """
    out: list[Rejection] = []
    for col in table.columns:
        n = col.type.length
        if col.type.kind is not Kind.STRING or n is None or n > (longest or n):
            continue
        if col.name not in batch.schema.names:
            continue
        text: Any = batch.column(col.name)  # the stubs type utf8_length per string class
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
            continue
        found: Any = pc.greater(pc.utf8_length(text), pa.scalar(n))
        mask = pc.fill_null(found, False)
        if pc.any(mask).as_py():
            reason = f"longer than {col.type}"
            out += [Rejection(i, col.name, reason) for i, v in enumerate(mask.to_pylist()) if v]
    return out
