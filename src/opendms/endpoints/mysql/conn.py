"""Connections to MySQL/MariaDB (PyMySQL) and translation of driver errors."""

from __future__ import annotations

import contextlib
from typing import Any

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

# can't connect, gone away, lost during a query, server shutting down, connection
# killed (KILL, MariaDB 1927), query interrupted by a shutdown
_CONNECT = {2002, 2003, 2005, 2006, 2013, 2055, 1053, 1927, 1317, 1152, 1159, 1161}
_CONFLICT = {1205, 1213}  # lock wait timeout, deadlock
_RESOURCE = {3, 1021, 1037, 1040, 1041, 1114, 1135}  # disk full, out of memory, too many
_AUTH = {1045, 1698}
_PRIVILEGE = {1044, 1142, 1143, 1227, 1370}


def pymysql_module() -> Any:
    try:
        import pymysql
    except ImportError as exc:
        raise MissingExtraError("pymysql", "mysql") from exc
    return pymysql


def translate(exc: Exception, url: EndpointURL) -> EndpointError:
    """One clear line for a driver error (by MySQL error code)."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if url.password:
        text = text.replace(str(url.password), "***")
    where = str(url)
    if code in _CONNECT:
        return ConnectError(where, f"cannot reach {url.host}:{url.port or 3306}: {text}")
    if code in _CONFLICT:
        return ConflictError(where, f"conflict with another session: MySQL error {code}: {text}")
    if code in _RESOURCE:
        return ResourceError(where, f"the server is out of resources: MySQL error {code}: {text}")
    if code in _AUTH:
        return AuthenticationError(where, f"authentication failed for user {url.user!r}")
    if code == 1049:
        return DatabaseMissingError(where, f"database {url.database!r} does not exist")
    if code in _PRIVILEGE:
        return PrivilegeError(where, f"missing privilege: {text}")
    if code == 0 and _lost(exc, text):
        return ConnectError(where, f"connection to {url.host}:{url.port or 3306} lost: {text}")
    return EndpointError(where, f"MySQL error {code}: {text}" if code else text or repr(exc))


def _lost(exc: Exception, text: str) -> bool:
    """PyMySQL's own signs of a connection that is gone: an InterfaceError (used after it
    broke, ``(0, '')``), a socket error on a connection that was open, or its socket
    already dropped (``'NoneType' object has no attribute 'sendall'``: the connection
    closed itself on an error while another statement was being sent)."""
    kind = type(exc).__name__
    low = text.lower()
    gone = ("already closed", "broken pipe", "reset by peer", "lost connection", "timed out")
    if kind == "AttributeError":
        return "'nonetype' object has no attribute" in low
    return kind in ("InterfaceError", "ConnectionError", "BrokenPipeError") or any(
        g in low for g in gone
    )


def tune_socket(sock: Any) -> None:
    """Notice a network that fails without a reset within about 30 s (keepalive probes
    while idle, a limit on unacknowledged data while sending) instead of TCP's default of
    many minutes."""
    import socket

    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (
        ("TCP_KEEPIDLE", 10),
        ("TCP_KEEPINTVL", 5),
        ("TCP_KEEPCNT", 3),
        ("TCP_USER_TIMEOUT", 30000),
    ):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, option, value in options:
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)


def connect(url: EndpointURL, database: str | None = None, **extra: Any) -> Any:
    """A PyMySQL connection (utf8mb4, UTC session), errors translated."""
    conn = _connect(url, database, **extra)
    tune_socket(getattr(conn, "_sock", None))
    return conn


def _connect(url: EndpointURL, database: str | None, **extra: Any) -> Any:
    pymysql = pymysql_module()
    try:
        return pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.user or "root",
            password=str(url.password),
            database=url.database if database is None else database or None,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=10,
            init_command="SET time_zone = '+00:00'",
            **extra,
        )
    except pymysql.Error as exc:
        raise translate(exc, url) from exc


def cx_url(url: EndpointURL) -> str:
    """The connection URL connectorx expects."""
    auth = url.user or "root"
    if url.password:
        from urllib.parse import quote

        auth += ":" + quote(str(url.password), safe="")
    return f"mysql://{auth}@{url.host or '127.0.0.1'}:{url.port or 3306}/{url.database}"
