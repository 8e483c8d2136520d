"""Connections to PostgreSQL and translation of driver errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from opendms.endpoints.base import EndpointURL
from opendms.errors import (
    AuthenticationError,
    ConflictError,
    ConnectError,
    DatabaseMissingError,
    EndpointError,
    MissingExtraError,
    PrivilegeError,
    ResourceError,
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


# A network that fails without a reset (a cut link, a vanished host) is noticed within
# about 30 s instead of TCP's default of many minutes: keepalive probes while idle, and
# a limit on unacknowledged data while sending. A URL that sets any of them wins.
LIBPQ_TIMEOUTS = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "30000",
}


# The same limits for the server's end of the connection (session settings, PostgreSQL
# 12+). Without them a backend whose client vanished behind a cut link keeps its
# transaction, and its locks, until the kernel's two-hour keepalive: the reconnected
# task would wait on its own orphan's row and table locks.
_SERVER_SETTINGS = {
    "keepalives_idle": "tcp_keepalives_idle",
    "keepalives_interval": "tcp_keepalives_interval",
    "keepalives_count": "tcp_keepalives_count",
    "tcp_user_timeout": "tcp_user_timeout",
}


def server_timeouts_sql(params: Mapping[str, Any]) -> str | None:
    """A statement giving the server's end of a new session the dead-network limits of
    the client's end (``LIBPQ_TIMEOUTS``, or those in the connection's ``params``); None
    when they turn keepalives off. Settings the server does not know are skipped."""
    if str(params.get("keepalives", "1")) == "0":
        return None
    values = {**LIBPQ_TIMEOUTS, **{k: str(v) for k, v in params.items() if k in LIBPQ_TIMEOUTS}}
    rows = ", ".join(
        f"('{guc}', '{values[key]}')"
        for key, guc in _SERVER_SETTINGS.items()
        if values[key].isdigit()
    )
    if not rows:
        return None
    return (
        "SELECT count(set_config(s.name, s.value, false)) FROM (VALUES "
        f"{rows}) AS s(name, value) JOIN pg_settings USING (name)"
    )


def set_server_timeouts(conn: Any, params: Mapping[str, Any]) -> None:
    """Run :func:`server_timeouts_sql` on a DB-API connection (committed)."""
    sql = server_timeouts_sql(params)
    if sql is None:
        return
    cur = conn.cursor()
    try:
        cur.execute(sql)
        cur.fetchall()
    finally:
        cur.close()
    if not getattr(conn, "autocommit", False):
        conn.commit()


def libpq_conninfo(url: EndpointURL) -> str:
    """:func:`conninfo` plus the dead-network timeouts, for libpq-based drivers
    (psycopg, psycopg2, ADBC); asyncpg takes :func:`conninfo`."""
    extra = {k: v for k, v in LIBPQ_TIMEOUTS.items() if k not in url.query}
    if not extra:
        return conninfo(url)
    from urllib.parse import urlencode

    joiner = "&" if "?" in url.raw else "?"
    return conninfo(url) + joiner + urlencode(extra)


# SQLSTATEs of a connection that is gone or refused for now (class 08, admin/crash
# shutdown, cannot connect now) and of resources that ran out (disk, memory, connections)
_LOST_STATES = ("08", "57P01", "57P02", "57P03")
_RESOURCE_STATES = ("53",)
# serialization failure, deadlock, lock not available (lock_timeout)
_CONFLICT_STATES = frozenset({"40001", "40P01", "55P03"})
_LOST_TEXT = (
    "server closed the connection",
    "terminating connection",
    "connection already closed",
    "connection is closed",
    "connection is lost",
    "the connection is lost",
    "consuming input failed",
    "could not receive data",
    "could not send data",
    "ssl syscall error",
    "ssl connection has been closed",
    "no connection to the server",
    "connection was closed in the middle",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "connection reset",
    "broken pipe",
    "server conn crashed",
    "connect call failed",
    "no copy in progress",  # libpq, after the replication connection died mid-stream
    "underlying connection is closed",
)


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a psycopg/psycopg2/asyncpg error, or ''."""
    for attr in ("sqlstate", "pgcode"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            return value
    return ""


def lost_connection(exc: BaseException) -> bool:
    """True when ``exc`` says the connection to the server is gone or refused for now."""
    state = sqlstate(exc)
    if state and state.startswith(_LOST_STATES):
        return True
    low = str(exc).lower()
    return any(t in low for t in _LOST_TEXT)


def translate(exc: Exception, url: EndpointURL) -> EndpointError:
    """One clear line for a driver error (never showing the password)."""
    text = scrub(str(exc).strip(), url)
    first = text.splitlines()[0] if text else type(exc).__name__
    low = text.lower()
    where = str(url)
    if lost_connection(exc):
        return ConnectError(where, f"connection to {url.host}:{url.port or 5432} lost: {first}")
    if sqlstate(exc) == "55006" and "replication slot" in low:
        return ResourceError(where, f"busy: {first}")  # another WAL sender still holds it
    if sqlstate(exc) in _CONFLICT_STATES:
        return ConflictError(where, f"conflict with another session: {first}")
    if sqlstate(exc).startswith(_RESOURCE_STATES):
        return ResourceError(where, f"the server is out of resources: {first}")
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
        conn = pg.connect(libpq_conninfo(url), autocommit=autocommit, connect_timeout=10)
    except pg.Error as exc:
        raise translate(exc, url) from exc
    try:
        set_server_timeouts(conn, url.query)
    except pg.Error as exc:
        conn.close()
        raise translate(exc, url) from exc
    return conn
