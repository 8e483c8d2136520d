"""PostgreSQL -> DynamoDB (dynalite) CDC: inserts, updates (a key change, values that
become NULL), deletes and a truncate after the full load, every item checked exactly;
the checkpoint item; a task killed between batches and restarted."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from opendms.config import task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore
from tests.integration.test_dynamodb_target import _client, _prefix, _sorted, scan
from tests.oracles.rows import run_sql

pytestmark = pytest.mark.dynamodb

SETUP = [
    "CREATE TABLE emp (emp_id int PRIMARY KEY, dept text NOT NULL, name text, "
    "salary numeric(38,9), doc jsonb, tags text[])",
    "INSERT INTO emp VALUES (1, 'R&D', 'Ada', 12345678901234567890.123456789, "
    "'{\"a\": [1, 2.5]}', ARRAY['x', NULL]), (2, 'Ops', 'Bob', 10, NULL, NULL), "
    "(3, 'Ops', 'Cy', 0.5, '{}', '{}')",
    "CREATE TABLE line (order_id int, line_no int, qty int, PRIMARY KEY (order_id, line_no))",
    "INSERT INTO line VALUES (1, 1, 5), (1, 2, 6), (2, 1, 7)",
    "CREATE TABLE logs (id int PRIMARY KEY, msg text)",
    "INSERT INTO logs VALUES (1, 'a'), (2, 'b')",
]
CHANGES = [
    "INSERT INTO emp VALUES (4, 'R&D', 'Dee', -1.5, '[1, {\"b\": null}]', ARRAY['q'])",
    "UPDATE emp SET salary = salary * 2, name = NULL WHERE emp_id = 2",
    "UPDATE emp SET emp_id = 30, name = 'Cy moved' WHERE emp_id = 3",
    "DELETE FROM emp WHERE emp_id = 1",
    "BEGIN; UPDATE line SET qty = qty + 100 WHERE order_id = 1; "
    "DELETE FROM line WHERE order_id = 2 AND line_no = 1; "
    "INSERT INTO line VALUES (3, 1, 8); COMMIT",
    "TRUNCATE logs",
    "INSERT INTO logs VALUES (9, 'after the truncate')",
]
# emp is mapped record-to-document, keyed by a template of its primary key
MAPPING = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "public", "table-name": "%"},
            "rule-action": "include",
        },
        {
            "rule-type": "object-mapping",
            "rule-id": "2",
            "rule-name": "emp",
            "rule-action": "map-record-to-document",
            "object-locator": {"schema-name": "public", "table-name": "emp"},
            "target-table-name": "Staff",
            "mapping-parameters": {
                "partition-key-name": "pk",
                "sort-key-name": "dept",
                "attribute-mappings": [
                    {
                        "target-attribute-name": "pk",
                        "attribute-type": "scalar",
                        "attribute-sub-type": "string",
                        "value": "EMP#${emp_id}",
                    }
                ],
            },
        },
    ]
}


def _staff(emp_id: int, dept: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "pk": {"S": f"EMP#{emp_id}"},
        "dept": {"S": dept},
        "_doc": {"M": {"emp_id": {"N": str(emp_id)}, **doc}},
    }


STAFF_AFTER = [
    _staff(2, "Ops", {"salary": {"N": "20"}}),
    _staff(
        30,
        "Ops",
        {"name": {"S": "Cy moved"}, "salary": {"N": "0.5"}, "doc": {"M": {}}, "tags": {"L": []}},
    ),
    _staff(
        4,
        "R&D",
        {
            "name": {"S": "Dee"},
            "salary": {"N": "-1.5"},
            "doc": {"L": [{"N": "1"}, {"M": {"b": {"NULL": True}}}]},
            "tags": {"L": [{"S": "q"}]},
        },
    ),
]
LINE_AFTER = [
    {"order_id": {"N": "1"}, "line_no": {"N": "1"}, "qty": {"N": "105"}},
    {"order_id": {"N": "1"}, "line_no": {"N": "2"}, "qty": {"N": "106"}},
    {"order_id": {"N": "3"}, "line_no": {"N": "1"}, "qty": {"N": "8"}},
]


@pytest.fixture
def target(dynalite_url: str) -> str:
    return f"{dynalite_url}&table_prefix=c{uuid.uuid4().hex[:8]}_"


def _spec(source: str, target: str, threads: int = 4) -> dict[str, Any]:
    return {
        "name": "ddbcdc",
        "source": source,
        "target": target,
        "migration_type": "full-load-and-cdc",
        "table_mappings": MAPPING,
        "task_settings": {
            "TargetMetadata": {"ParallelApplyThreads": threads},
            "ChangeProcessingTuning": {"BatchApplyTimeoutMin": 0},
        },
    }


def checkpoint(url: str, task: str) -> str | None:
    table = _prefix(url) + "awsdms_opendms_checkpoints"
    client = _client(url)
    try:
        found = client.get_item(TableName=table, Key={"task_name": {"S": task}})
    except client.exceptions.ResourceNotFoundException:
        return None  # not created yet
    item = found.get("Item")
    return str(item["position"]["S"]) if item else None


def test_changes_after_the_full_load(pg_db: str, target: str, tmp_path: Path) -> None:
    run_sql(pg_db, SETUP)
    store = StateStore(tmp_path / "state.db")
    spec = task_from_dict(_spec(pg_db, target), where="test")
    run_task(spec, store)
    staff = scan(target, "Staff")
    ada = next(i for i in staff if i["pk"] == {"S": "EMP#1"})
    assert ada["_doc"]["M"]["salary"] == {"N": "12345678901234567890.123456789"}
    assert ada["_doc"]["M"]["doc"] == {"M": {"a": {"L": [{"N": "1"}, {"N": "2.5"}]}}}
    assert ada["_doc"]["M"]["tags"] == {"L": [{"S": "x"}, {"NULL": True}]}
    first = checkpoint(target, "ddbcdc")
    assert first is not None
    run_sql(pg_db, [s for sql in CHANGES for s in sql.split("; ")])
    run_task(spec, store)
    assert scan(target, "Staff") == _sorted(STAFF_AFTER)
    assert scan(target, "line") == _sorted(LINE_AFTER)
    assert scan(target, "logs") == [{"id": {"N": "9"}, "msg": {"S": "after the truncate"}}]
    last = checkpoint(target, "ddbcdc")
    assert last is not None and last != first


# -- a crash between batches ------------------------------------------------------------

EXE = [sys.executable, "-m", "opendms.cli.main"]


def _applied(state: Path) -> int:
    if not state.exists():
        return 0
    store = StateStore(state)
    try:
        return sum(i + u + d for i, u, d, _ in store.change_counts("ddbcdc").values())
    finally:
        store.close()


def _wait(
    what: str, done: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"waiting for {what}: {log.read_text()[-3000:]}"
        time.sleep(0.2)


def _start(tmp_path: Path, file: Path, log: Path) -> subprocess.Popen[bytes]:
    cmd = [
        *EXE,
        "--state",
        str(tmp_path / "state.db"),
        "-v",
        "task",
        "run",
        "--quiet",
        "--follow",
        str(file),
    ]
    out = log.open("ab")
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def _source_items(pg_db: str) -> list[dict[str, Any]]:
    """The ``logs`` rows of the source as the items they should be."""
    import psycopg

    with psycopg.connect(pg_db) as conn:
        rows = conn.execute("SELECT id, msg FROM logs").fetchall()
    return _sorted([{"id": {"N": str(i)}, "msg": {"S": m}} for i, m in rows])


def test_killed_between_batches_and_restarted(pg_db: str, target: str, tmp_path: Path) -> None:
    run_sql(pg_db, SETUP)
    file, log, state = tmp_path / "task.yaml", tmp_path / "task.log", tmp_path / "state.db"
    file.write_text(yaml.safe_dump(_spec(pg_db, target, threads=2)))
    proc = _start(tmp_path, file, log)
    _wait("the full load", lambda: checkpoint(target, "ddbcdc") is not None, proc, log)
    for n in range(10, 40):
        run_sql(
            pg_db,
            [
                f"INSERT INTO logs VALUES ({n}, 'row {n}')",
                f"UPDATE logs SET msg = 'u{n}' WHERE id = {n - 5}",
            ],
        )
    _wait("some changes applied", lambda: _applied(state) >= 10, proc, log)
    before = checkpoint(target, "ddbcdc")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    run_sql(
        pg_db,
        ["DELETE FROM logs WHERE id < 20", "INSERT INTO logs VALUES (100, 'after the kill')"],
    )
    proc = _start(tmp_path, file, log)
    try:
        _wait(
            "the target equal to the source",
            lambda: scan(target, "logs") == _source_items(pg_db),
            proc,
            log,
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, log.read_text()[-3000:]
    assert scan(target, "logs") == _source_items(pg_db)
    after = checkpoint(target, "ddbcdc")
    assert before is not None and after is not None and after != before
