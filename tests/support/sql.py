"""Plain SQL against any test endpoint (PostgreSQL, MySQL/MariaDB, SQLite) by URL."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

from opendms.endpoints.base import EndpointURL


def connect(url: str) -> Any:
    """An autocommit DB-API connection for a PostgreSQL, MySQL/MariaDB or SQLite URL."""
    parsed = EndpointURL.parse(url)
    if parsed.scheme in ("mysql", "mariadb"):
        from opendms.endpoints.mysql.conn import connect as mysql_connect

        conn = mysql_connect(parsed)
        conn.autocommit(True)
        return conn
    if parsed.scheme == "sqlite":
        from opendms.endpoints.sqlite import database_path

        return sqlite3.connect(database_path(parsed), isolation_level=None)
    return psycopg.connect(url, autocommit=True)


def query(conn: Any, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """Run one statement; its rows (empty for statements without a result)."""
    cur = conn.cursor()
    try:
        if args:
            cur.execute(sql, args)
        else:
            cur.execute(sql)  # no parameters: a literal % stays as it is
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def execute(url: str, statements: list[str]) -> None:
    """Run ``statements`` one by one (autocommit)."""
    conn = connect(url)
    try:
        for sql in statements:
            query(conn, sql)
    finally:
        conn.close()


def table_rows(url: str, table: str, key: str = "1") -> list[tuple[Any, ...]]:
    """Every row of ``table`` ordered by ``key``; on PostgreSQL the table may sit in any
    schema (a MySQL source's tables land in a schema named after its database)."""
    conn = connect(url)
    try:
        name = table
        if EndpointURL.parse(url).scheme.startswith("postgres"):
            found = query(
                conn,
                "SELECT quote_ident(table_schema) FROM information_schema.tables "
                "WHERE table_name = %s",
                (table,),
            )
            name = f"{found[0][0]}.{table}" if found else table
        return [tuple(r) for r in query(conn, f"SELECT * FROM {name} ORDER BY {key}")]
    finally:
        conn.close()
