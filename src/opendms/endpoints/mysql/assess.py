"""Assessment checks for MySQL/MariaDB endpoints."""

from __future__ import annotations

from typing import Any

from opendms.checks import Check, passed, problem, skipped
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.changesource import check_settings, missing_privileges
from opendms.endpoints.mysql.conn import connect
from opendms.model import Table

SETTINGS = (
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "server_id",
    "binlog_transaction_compression",
    "binlog_row_value_options",
    "expire_logs_days",
    "binlog_expire_logs_seconds",
    "log_bin_compress",
    "local_infile",
)
MIN_RETENTION_S = 24 * 3600


def _rows(url: EndpointURL, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = connect(url, database="")
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args or None)
            return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def _settings(url: EndpointURL) -> dict[str, str]:
    names = ", ".join(f"'{n}'" for n in SETTINGS)
    rows = _rows(url, f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")
    return {str(k).lower(): str(v) for k, v in rows}


def _grants(url: EndpointURL) -> list[str]:
    return [str(r[0]) for r in _rows(url, "SHOW GRANTS")]


def source_checks(url: EndpointURL, tables: list[Table], cdc: bool) -> list[Check]:
    settings, grants = _settings(url), _grants(url)
    out = [_select(grants, url.database), _engines(url, tables)]
    if not cdc:
        why = "full-load task: the binlog is not read"
        ids = ("mysql-binlog-settings", "mysql-replication-privileges", "mysql-binlog-retention")
        return out + [skipped(i, why) for i in ids]
    return [
        *out,
        _binlog(settings),
        _replication_grants(grants),
        _retention(settings),
        _compression(settings),
    ]


def _binlog(settings: dict[str, str]) -> Check:
    problems = check_settings(settings, ["GRANT ALL PRIVILEGES ON *.* TO x"])
    if not problems:
        return passed(
            "mysql-binlog-settings",
            "log_bin=ON, binlog_format=ROW, binlog_row_image=FULL, binlog_row_metadata=FULL, "
            f"server_id={settings.get('server_id')}",
        )
    return problem(
        "mysql-binlog-settings",
        True,
        "the binlog cannot be captured: " + "; ".join(p.split(":")[0] for p in problems),
        " ".join(p.split(": ", 1)[-1].rstrip(".") + "." for p in problems),
        tuple(p.split(" ")[0] for p in problems),
    )


def _replication_grants(grants: list[str]) -> Check:
    missing = missing_privileges(grants)
    if not missing:
        return passed("mysql-replication-privileges", "REPLICATION SLAVE and CLIENT granted")
    return problem(
        "mysql-replication-privileges",
        True,
        "missing: " + "; ".join(m.split(":")[0] for m in missing),
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the task's user "
        "(MariaDB 10.5+: BINLOG MONITOR instead of REPLICATION CLIENT)",
    )


def _retention(settings: dict[str, str]) -> Check:
    seconds = int(float(settings.get("binlog_expire_logs_seconds", "0") or 0))
    if not seconds:
        seconds = int(float(settings.get("expire_logs_days", "0") or 0) * 86400)
    if seconds == 0 or seconds >= MIN_RETENTION_S:
        shown = "binlogs never expire" if seconds == 0 else f"binlogs kept {seconds // 3600} h"
        return passed("mysql-binlog-retention", shown)
    return problem(
        "mysql-binlog-retention",
        False,
        f"binlogs expire after {seconds // 60} minutes: a task stopped longer than that "
        "cannot resume",
        "keep binlogs at least 24 h (SET GLOBAL binlog_expire_logs_seconds = 86400)",
    )


def _compression(settings: dict[str, str]) -> Check:
    if settings.get("binlog_transaction_compression", "OFF").upper() in ("ON", "1"):
        return problem(
            "mysql-binlog-compression",
            True,
            "binlog_transaction_compression is ON (zstd transaction payloads are not decoded)",
            "SET GLOBAL binlog_transaction_compression = OFF",
        )
    note = " (MariaDB log_bin_compress is decoded)" if settings.get("log_bin_compress") else ""
    return passed("mysql-binlog-compression", "binlog transactions are not compressed" + note)


def _select(grants: list[str], database: str) -> Check:
    text = " ".join(grants).upper()
    db = database.upper()
    ok = "ALL PRIVILEGES ON *.*" in text or (
        "SELECT" in text and ("ON *.*" in text or f"ON `{db}`" in text)
    )
    if ok or " ON " not in text:
        return passed("mysql-select-privilege", "SELECT granted")
    return problem(
        "mysql-select-privilege",
        True,
        f"no SELECT privilege on database {database!r}",
        f"GRANT SELECT ON `{database}`.* TO the task's user",
    )


def _engines(url: EndpointURL, tables: list[Table]) -> Check:
    if not tables:
        return passed("mysql-table-engines", "no tables")
    rows = _rows(
        url,
        "SELECT table_schema, table_name, engine FROM information_schema.tables "
        "WHERE engine IS NOT NULL AND engine <> 'InnoDB' AND table_type = 'BASE TABLE'",
    )
    wanted = {(t.schema, t.name) for t in tables}
    bad = tuple(f"{s}.{n} ({e})" for s, n, e in rows if (s, n) in wanted)
    if not bad:
        return passed("mysql-table-engines", "every table is InnoDB")
    return problem(
        "mysql-table-engines",
        False,
        f"{len(bad)} table(s) are not InnoDB: they are not transactional, so the full load "
        "and the binlog can disagree",
        "ALTER TABLE ... ENGINE = InnoDB",
        bad,
    )


def target_checks(url: EndpointURL, existing: list[str]) -> list[Check]:
    settings, grants = _settings(url), _grants(url)
    out = []
    if settings.get("local_infile", "OFF").upper() in ("ON", "1"):
        out.append(passed("mysql-local-infile", "local_infile is ON"))
    else:
        out.append(
            problem(
                "mysql-local-infile",
                True,
                "local_infile is OFF: the full load writes with LOAD DATA LOCAL INFILE",
                "SET GLOBAL local_infile = ON (and local_infile=1 in the server configuration)",
            )
        )
    text = " ".join(grants).upper()
    needed = ("CREATE", "INSERT", "UPDATE", "DELETE", "DROP")
    lacking = [p for p in needed if p not in text and "ALL PRIVILEGES" not in text]
    if not lacking:
        out.append(passed("target-create-privilege", "CREATE, INSERT, UPDATE, DELETE, DROP"))
    else:
        out.append(
            problem(
                "target-create-privilege",
                True,
                "missing privileges on the target: " + ", ".join(lacking),
                f"GRANT {', '.join(lacking)} ON `{url.database}`.* TO the task's user",
            )
        )
    return out
