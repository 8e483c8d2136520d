"""Seed 003's pipeline as written, on real servers: the admin database of companies and
per-table select/insert queries (examples/seed003/admin.sql) drives its two-state
machine (examples/seed003/pipeline.json), fanned out per company and table with a Map,
moving MariaDB -> lake CSV on S3 -> MariaDB with the seed's Retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from opendms.workflows.actions import Actions
from opendms.workflows.definition import load
from opendms.workflows.run import Execution, MemoryJournal
from tests.support.sql import connect, execute, query, table_rows

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "seed003"

SOURCE = [
    "CREATE TABLE users (id INT PRIMARY KEY, username VARCHAR(60), company INT)",
    "INSERT INTO users VALUES (1, 'ana', 1), (2, 'bo', 1), (3, 'cy', 2), (4, '007', 2),"
    " (5, 'dee', 3), (6, '', 1), (7, NULL, 2)",
    "CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, total DECIMAL(12,2),"
    " ordered_at DATETIME, company INT)",
    "INSERT INTO orders VALUES"
    " (10, 1, 19.99, CURRENT_DATE - INTERVAL 10 DAY, 1),"
    " (11, 2, 5.00, CURRENT_DATE - INTERVAL 50 DAY, 1),"
    " (12, 3, 123456789.01, CURRENT_DATE - INTERVAL 10 DAY, 2),"
    " (13, 4, 7.50, CURRENT_DATE - INTERVAL 50 DAY, 2),"
    " (14, 5, 1.00, CURRENT_DATE - INTERVAL 1 DAY, 3),"
    " (15, 1, 2.00, CURRENT_DATE - INTERVAL 90 DAY, 1)",
]
REPORTS = [
    "CREATE TABLE users (id INT PRIMARY KEY, username VARCHAR(60))",
    "CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, total DECIMAL(12,2),"
    " ordered_at DATETIME)",
]


def _admin_statements() -> list[str]:
    text = (EXAMPLE / "admin.sql").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@pytest.fixture
def databases(mysql_db: str, mysql_target_db: str) -> tuple[str, str]:
    execute(mysql_db, _admin_statements() + SOURCE)
    execute(mysql_target_db, REPORTS)
    return mysql_db, mysql_target_db


def _expected(source: str) -> tuple[list[Any], list[Any]]:
    """What the reports database should hold: users of companies 1 and 2, and their
    orders of the last 60 (company 1) or 30 (company 2) days."""
    conn = connect(source)
    try:
        users = query(conn, "SELECT id, username FROM users WHERE company IN (1, 2) ORDER BY id")
        orders = query(
            conn,
            "SELECT id, user_id, total, ordered_at FROM orders WHERE (company = 1 AND"
            " ordered_at >= CURRENT_DATE - INTERVAL 60 DAY) OR (company = 2 AND"
            " ordered_at >= CURRENT_DATE - INTERVAL 30 DAY) ORDER BY id",
        )
    finally:
        conn.close()
    return [tuple(r) for r in users], [tuple(r) for r in orders]


class Flaky:
    """The opendms actions, but the first ``failures`` calls of each export and import
    of company 2 fail as an unreachable server would."""

    def __init__(self, actions: Actions, failures: int) -> None:
        self.actions, self.failures = actions, failures
        self.calls: dict[str, int] = {}

    def __call__(self, resource: str, payload: Any) -> Any:
        key = f"{resource} {payload.get('Key', '')}"
        self.calls[key] = self.calls.get(key, 0) + 1
        if "globex/" in key and self.calls[key] <= self.failures:
            raise ConnectionError(f"injected failure {self.calls[key]} of {key}")
        return self.actions(resource, payload)


def test_seed_003_pipeline_moves_each_company_with_retries(
    databases: tuple[str, str], s3_url: str
) -> None:
    source, reports = databases
    actions = Actions({"admin": source, "source": source, "reports": reports, "lake": s3_url})
    flaky = Flaky(actions, failures=2)
    waits: list[float] = []
    events: list[dict[str, Any]] = []
    machine = load(EXAMPLE / "pipeline.json")
    out = Execution(machine, flaky, events.append, waits.append, journal=MemoryJournal()).run({})

    users, orders = _expected(source)
    assert table_rows(reports, "users") == users
    assert table_rows(reports, "orders") == orders
    assert any(isinstance(r[2], Decimal) and r[2] == Decimal("123456789.01") for r in orders)
    assert (4, "007") in users and (6, "") in users and (7, None) in users  # text, '' and NULL
    assert out == [
        {"file": "acme/users.csv", "rows": 3},
        {"file": "acme/orders.csv", "rows": 2},
        {"file": "globex/users.csv", "rows": 3},
        {"file": "globex/orders.csv", "rows": 1},
    ]
    # company 2's exports and imports failed twice each and were retried after 1 s, 2 s
    retried = [e for e in events if e["type"] == "StateRetried"]
    assert len(retried) == 8
    assert sorted(waits) == [1.0] * 4 + [2.0] * 4
    assert {e["error"] for e in retried} == {"ConnectionError"}
    assert flaky.calls["opendms:export globex/users.csv"] == 3
    assert flaky.calls["opendms:export acme/users.csv"] == 1
    # the files in the lake are the CSV the seed's first Lambda wrote
    _check_lake_file(s3_url, "acme/users.csv", "id,username\n1,ana\n2,bo\n6,\n")


def _check_lake_file(s3_url: str, key: str, expected: str) -> None:
    import boto3

    parts = urlsplit(s3_url)
    endpoint = parse_qs(parts.query)["endpoint_url"][0]
    client = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
    body = client.get_object(Bucket=parts.netloc, Key=f"lake/{key}")["Body"].read().decode()
    assert body.replace('"', "") == expected
    assert '6,""' in body  # an empty string is quoted, a NULL is not


def test_a_retry_that_runs_out_fails_the_map_and_the_execution(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    source, reports = databases
    lake = f"file://{tmp_path / 'lake'}"
    actions = Actions({"admin": source, "source": source, "reports": reports, "lake": lake})
    flaky = Flaky(actions, failures=4)  # one more than MaxAttempts 3
    events: list[dict[str, Any]] = []
    machine = load(EXAMPLE / "pipeline.json")
    with pytest.raises(Exception, match="injected failure 4") as failed:
        Execution(machine, flaky, events.append, lambda s: None).run({})
    assert getattr(failed.value, "error", "") == "ConnectionError"
    assert events[-1]["type"] == "ExecutionFailed"
    assert flaky.calls["opendms:export globex/users.csv"] == 4


def test_the_cli_runs_the_pipeline_with_named_endpoints(
    databases: tuple[str, str], tmp_path: Path
) -> None:
    source, reports = databases
    lake = f"file://{tmp_path / 'lake'}"
    env = {**os.environ, "OPENDMS_STATE": str(tmp_path / "s.db")}
    cmd = [
        str(Path(sys.executable).parent / "opendms"),
        "workflow",
        "run",
        str(EXAMPLE / "pipeline.json"),
        "--name",
        "reports-1",
        *("--endpoint", f"admin={source}", "--endpoint", f"source={source}"),
        *("--endpoint", f"reports={reports}", "--endpoint", f"lake={lake}"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert [r["rows"] for r in json.loads(done.stdout)] == [3, 2, 3, 1]
    users, orders = _expected(source)
    assert table_rows(reports, "users") == users and table_rows(reports, "orders") == orders
    assert (tmp_path / "lake" / "globex" / "orders.csv").exists()
    history = subprocess.run(
        [*cmd[:2], "history", "reports-1", "--json"], capture_output=True, text=True, env=env
    )
    text = history.stdout
    password = urlsplit(source).password or ""
    assert json.loads(text)[-1]["type"] == "ExecutionSucceeded"
    assert not password or password not in text  # URLs stay out of the history
