"""MySQL and MariaDB endpoint: ``mysql://user:password@host:port/database``."""

from __future__ import annotations

from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.conn import connect
from opendms.endpoints.mysql.settings import MYSQL_SETTINGS
from opendms.endpoints.mysql.source import MySQLSource
from opendms.endpoints.mysql.target import MySQLTarget
from opendms.errors import PrivilegeError

__all__ = [
    "MySQLSource",
    "MySQLTarget",
    "applier",
    "change_source",
    "check",
    "open_source",
    "open_target",
]


def open_source(url: EndpointURL, settings: dict[str, Any]) -> MySQLSource:
    MYSQL_SETTINGS.resolve(url, settings)
    return MySQLSource(url)


def open_target(url: EndpointURL, settings: dict[str, Any]) -> MySQLTarget:
    MYSQL_SETTINGS.resolve(url, settings)
    return MySQLTarget(url)


def change_source(url: EndpointURL, task: str, settings: dict[str, Any]) -> Any:
    MYSQL_SETTINGS.resolve(url, settings)
    from opendms.endpoints.mysql.capture import MySqlCapture

    return MySqlCapture(url, task)


def applier(target: MySQLTarget, task: str, plans: list[Any], opts: Any) -> Any:
    from opendms.endpoints.mysql.apply import MySqlApplier

    return MySqlApplier(target, task, plans, opts.policies, opts.on_error)


def check(url: EndpointURL, settings: dict[str, Any]) -> str:
    """Connect and report user, version and the privileges a task needs."""
    settings = MYSQL_SETTINGS.resolve(url, settings)
    conn = connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), VERSION()")
            user, version = cur.fetchone()
            cur.execute("SHOW GRANTS")
            grants = " ".join(r[0] for r in cur.fetchall()).upper()
            cur.execute("SELECT @@local_infile")
            local_infile = bool(cur.fetchone()[0])
    finally:
        conn.close()
    role = str(settings.get("role", "")).lower()
    if role == "target" and "ALL PRIVILEGES" not in grants and "CREATE" not in grants:
        raise PrivilegeError(str(url), f"user {user} may not create tables (GRANT CREATE)")
    if role == "source" and "ALL PRIVILEGES" not in grants and "SELECT" not in grants:
        raise PrivilegeError(str(url), f"user {user} may not read tables (GRANT SELECT)")
    infile = "on" if local_infile else "off"
    return f"connected as {user} to MySQL/MariaDB {version}; local_infile {infile}"
