"""Every PostgreSQL session opendms opens carries the dead-network limits at the
server's end too: a backend whose client vanished behind a cut link must not keep its
transaction (and the locks the reconnected task then waits on) for the kernel's two
hours."""

from __future__ import annotations

from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.postgres.conn import connect
from opendms.endpoints.postgres.fastcopy import _connect
from opendms.endpoints.postgres.target import PostgresTarget, PostgresWriter
from opendms.model import Column, ColumnType, Kind, Table

SETTINGS = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")


def _shown(conn: Any) -> dict[str, str]:
    cur = conn.cursor()
    out = {}
    for name in (*SETTINGS, "tcp_user_timeout"):
        cur.execute(f"SELECT current_setting('{name}')")
        out[name] = str(cur.fetchall()[0][0])
    cur.close()
    return out


def test_a_session_gets_the_default_limits(pg_target_db: str) -> None:
    conn = connect(EndpointURL.parse(pg_target_db))
    try:
        assert _shown(conn) == {
            "tcp_keepalives_idle": "10",
            "tcp_keepalives_interval": "5",
            "tcp_keepalives_count": "3",
            "tcp_user_timeout": "30000",
        }
    finally:
        conn.close()


def test_the_url_sets_both_ends(pg_target_db: str) -> None:
    url = EndpointURL.parse(pg_target_db + "?keepalives_idle=20&tcp_user_timeout=45000")
    conn = connect(url, autocommit=False)  # set in a transaction that was committed
    try:
        conn.rollback()
        shown = _shown(conn)
        assert (shown["tcp_keepalives_idle"], shown["tcp_user_timeout"]) == ("20", "45000")
    finally:
        conn.close()


def test_keepalives_off_leaves_the_server_defaults(pg_target_db: str) -> None:
    conn = connect(EndpointURL.parse(pg_target_db + "?keepalives=0"))
    try:
        assert _shown(conn)["tcp_user_timeout"] == "0"
    finally:
        conn.close()


def test_copy_and_arrow_writer_sessions_get_them(pg_target_db: str) -> None:
    with _connect(pg_target_db, autocommit=False) as conn:
        conn.rollback()
        assert _shown(conn)["tcp_user_timeout"] == "30000"
    target = PostgresTarget(EndpointURL.parse(pg_target_db))
    table = Table("public", "t", (Column("id", ColumnType(Kind.INT32), nullable=False),))
    writer = PostgresWriter(target, table)
    try:
        writer.conn.rollback()
        assert _shown(writer.conn)["tcp_keepalives_idle"] == "10"
    finally:
        writer.conn.close()
