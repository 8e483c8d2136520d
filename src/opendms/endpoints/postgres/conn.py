"""Connections to PostgreSQL and translation of driver errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from opendms.endpoints.base import EndpointURL
from opendms.errors import (
    AuthenticationError,
    ConnectError,
    DatabaseMissingError,
    EndpointError,
    MissingExtraError,
    PrivilegeError,
)

try:
    import psycopg
except ImportError:  # pragma: no cover - depends on the install
    psycopg = None  # type: ignore[assignment]


def require_psycopg() -> Any:
    if psycopg is None:
        raise MissingExtraError("psycopg", "postgresql")
    return psycopg


def conninfo(url: EndpointURL) -> str:
    """A libpq URI without opendms-only query keys."""
    return url.raw.replace("postgres://", "postgresql://", 1)


def translate(exc: Exception, url: EndpointURL) -> EndpointError:
    """One clear line for a driver error (never showing the password)."""
    text = scrub(str(exc).strip(), url)
    first = text.splitlines()[0] if text else type(exc).__name__
    low = text.lower()
    where = str(url)
    if "password authentication failed" in low or "no password supplied" in low:
        return AuthenticationError(where, f"authentication failed for user {url.user!r}")
    if "does not exist" in low and "database" in low:
        return DatabaseMissingError(where, f"database {url.database!r} does not exist")
    if "permission denied" in low or ("must be" in low and "privilege" in low):
        return PrivilegeError(where, f"missing privilege: {first}")
    if "connection refused" in low or "could not connect" in low or "timeout" in low:
        return ConnectError(where, f"cannot reach {url.host}:{url.port or 5432}: {_reason(low)}")
    if "could not translate host name" in low:
        return ConnectError(where, f"unknown host {url.host!r}")
    return EndpointError(where, first)


def scrub(text: str, url: EndpointURL) -> str:
    """``text`` with the URL's passwords (plain or percent-encoded) replaced by ``***``."""
    secrets = [str(url.password)]
    secrets += [v for k, v in url.query.items() if "password" in k.lower()]
    forms = {f for s in secrets for f in (s, quote(s, safe=""))} - {""}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _reason(low: str) -> str:
    if "refused" in low:
        return "connection refused"
    if "timeout" in low or "timed out" in low:
        return "timed out"
    return "unreachable"


def connect(url: EndpointURL, autocommit: bool = True) -> Any:
    """A psycopg connection, with errors translated."""
    pg = require_psycopg()
    try:
        return pg.connect(conninfo(url), autocommit=autocommit, connect_timeout=10)
    except pg.Error as exc:
        raise translate(exc, url) from exc
