"""Validation of a DynamoDB target (dynalite): the items are read back (top-level
attributes and ``_doc`` members as columns) and compared with the source rows. A clean
load validates; items changed or deleted behind the task's back are found, by key."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from opendms.config import TaskSpec, task_from_dict
from opendms.service.run import run_task
from opendms.state import StateStore
from opendms.validate.runner import ValidationState, validate_task
from tests.integration.test_dynamodb_target import _client, _prefix

pytestmark = pytest.mark.dynamodb

SOURCE = """
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, total DECIMAL(12,2),
  placed DATE, note TEXT, raw BLOB);
INSERT INTO orders VALUES
  (1, 'ada', 10.50, '2024-01-02', NULL, x'00ff'),
  (2, 'bob', 99999.99, '2024-02-29', 'rush ✓', NULL),
  (3, 'cy', -0.01, NULL, '', x''),
  (4, 'dee', 0, '1999-12-31', 'x', x'01');
CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER);
INSERT INTO kv VALUES ('a', 1), ('b', NULL), ('c', 3);
"""
RULES = [
    {"rule-type": "selection", "rule-id": "1", "rule-name": "all",
     "object-locator": {"schema-name": "main", "table-name": "%"}, "rule-action": "include"},
    {"rule-type": "object-mapping", "rule-id": "2", "rule-name": "orders",
     "rule-action": "map-record-to-document",
     "object-locator": {"schema-name": "main", "table-name": "orders"},
     "mapping-parameters": {
         "partition-key-name": "pk",
         "attribute-mappings": [
             {"target-attribute-name": "pk", "attribute-type": "scalar",
              "attribute-sub-type": "string", "value": "ORDER#${id}"}]}},
]  # fmt: skip


def _spec(tmp_path: Path, target: str) -> TaskSpec:
    db = tmp_path / "source.db"
    conn = sqlite3.connect(db)
    conn.executescript(SOURCE)
    conn.close()
    return task_from_dict(
        {
            "name": "ddbv",
            "source": f"sqlite:///{db}",
            "target": target,
            "migration_type": "full-load",
            "table_mappings": {"rules": RULES},
        },
        where="test",
    )


def _states(result: Any) -> dict[str, ValidationState]:
    return {t.qualified: t.state for t in result.tables}


def test_validation_reads_dynamodb_items_back(dynalite_url: str, tmp_path: Path) -> None:
    target = f"{dynalite_url}&table_prefix=v{uuid.uuid4().hex[:8]}_"
    spec = _spec(tmp_path, target)
    store = StateStore(tmp_path / "state.db")
    run_task(spec, store)
    clean = validate_task(spec, store)
    assert clean.ok, [(t.qualified, t.state, t.message) for t in clean.tables]
    assert {t.qualified: t.source_rows for t in clean.tables} == {"main.orders": 4, "main.kv": 3}
    assert all(t.target_rows == t.source_rows for t in clean.tables)

    client, prefix = _client(target), _prefix(target)
    client.update_item(
        TableName=f"{prefix}orders",
        Key={"pk": {"S": "ORDER#2"}},
        UpdateExpression="SET #d.#t = :t",
        ExpressionAttributeNames={"#d": "_doc", "#t": "total"},
        ExpressionAttributeValues={":t": {"N": "99999.98"}},
    )
    client.delete_item(TableName=f"{prefix}kv", Key={"k": {"S": "c"}})
    client.put_item(TableName=f"{prefix}kv", Item={"k": {"S": "z"}, "v": {"N": "26"}})
    damaged = validate_task(spec, store)
    assert _states(damaged) == {
        "main.orders": ValidationState.MISMATCHED,
        "main.kv": ValidationState.MISMATCHED,
    }
    orders = next(t for t in damaged.tables if t.name == "orders")
    kv = next(t for t in damaged.tables if t.name == "kv")
    assert orders.mismatches == 1 and kv.mismatches == 2
    described = " ".join(str(f) for f in orders.failures)
    assert "99999.98" in described and "99999.99" in described
