"""SQLite -> DynamoDB (dynalite) full loads through ``opendms task run``: every item
checked exactly with boto3; the prep modes; an item over 400 KB as a data error."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from opendms.state import StateStore

pytestmark = pytest.mark.dynamodb

EXE = [sys.executable, "-m", "opendms.cli.main"]
SOURCE = """
CREATE TABLE employee (emp_id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT,
  dept TEXT NOT NULL, salary DECIMAL(10,2), hired DATE, photo BLOB, notes TEXT);
INSERT INTO employee VALUES
  (7, 'Ada', 'Byron', 'R&D', 1234.50, '2021-03-01', x'00ff', NULL),
  (8, 'Alan', 'Turing', 'R&D', 99999999.99, '2020-01-31', NULL, 'enigma ✓'),
  (9, 'Grace', NULL, 'Ops', -0.01, NULL, NULL, '');
CREATE TABLE plain (id INTEGER PRIMARY KEY, name TEXT, big TEXT);
INSERT INTO plain VALUES (1, 'one', NULL), (2, 'two', NULL);
"""
SELECT_ALL = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "all",
    "object-locator": {"schema-name": "main", "table-name": "%"},
    "rule-action": "include",
}
DOCUMENT = {
    "rule-type": "object-mapping",
    "rule-id": "2",
    "rule-name": "emp",
    "rule-action": "map-record-to-document",
    "object-locator": {"schema-name": "main", "table-name": "employee"},
    "target-table-name": "Employees",
    "mapping-parameters": {
        "partition-key-name": "dept",
        "sort-key-name": "emp_key",
        "exclude-columns": ["first_name", "last_name"],
        "attribute-mappings": [
            {
                "target-attribute-name": "emp_key",
                "attribute-type": "scalar",
                "attribute-sub-type": "string",
                "value": "EMP#${emp_id}",
            },
            {
                "target-attribute-name": "full_name",
                "attribute-type": "scalar",
                "attribute-sub-type": "string",
                "value": "${first_name} ${last_name}",
            },
        ],
    },
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    db = tmp_path / "source.db"
    conn = sqlite3.connect(db)
    conn.executescript(SOURCE)
    conn.close()
    return db


@pytest.fixture
def target(dynalite_url: str) -> str:
    return f"{dynalite_url}&table_prefix=t{uuid.uuid4().hex[:8]}_"


def _client(url: str) -> Any:
    endpoint = url.split("endpoint_url=")[1].split("&")[0]
    return boto3.session.Session().client(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1"
    )


def _prefix(url: str) -> str:
    return url.split("table_prefix=")[1]


def scan(url: str, table: str) -> list[dict[str, Any]]:
    """Every item of ``table`` (after the URL's prefix), sorted by its attributes."""
    client = _client(url)
    items = client.scan(TableName=_prefix(url) + table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda i: sorted((k, str(v)) for k, v in i.items()))


def run(tmp_path: Path, source: Path, target: str, **extra: Any) -> tuple[int, str]:
    """``opendms task run`` of a full-load task; (exit code, output)."""
    spec = {
        "name": "ddb",
        "source": f"sqlite:///{source}",
        "target": target,
        "migration_type": "full-load",
        "table_mappings": {"rules": [SELECT_ALL, DOCUMENT]},
        **extra,
    }
    file = tmp_path / "task.yaml"
    file.write_text(yaml.safe_dump(spec, allow_unicode=True))
    cmd = [*EXE, "--state", str(tmp_path / "state.db"), "task", "run", "--quiet", str(file)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


EMPLOYEES = [
    {
        "dept": {"S": "Ops"},
        "emp_key": {"S": "EMP#9"},
        "full_name": {"S": "Grace "},  # NULL adds nothing to a template
        "_doc": {"M": {"emp_id": {"N": "9"}, "salary": {"N": "-0.01"}, "notes": {"S": ""}}},
    },
    {
        "dept": {"S": "R&D"},
        "emp_key": {"S": "EMP#7"},
        "full_name": {"S": "Ada Byron"},
        "_doc": {
            "M": {
                "emp_id": {"N": "7"},
                "salary": {"N": "1234.5"},  # DynamoDB keeps numbers normalised
                "hired": {"S": "2021-03-01"},
                "photo": {"B": b"\x00\xff"},
            }
        },
    },
    {
        "dept": {"S": "R&D"},
        "emp_key": {"S": "EMP#8"},
        "full_name": {"S": "Alan Turing"},
        "_doc": {
            "M": {
                "emp_id": {"N": "8"},
                "salary": {"N": "99999999.99"},
                "hired": {"S": "2020-01-31"},
                "notes": {"S": "enigma ✓"},
            }
        },
    },
]
PLAIN = [
    {"id": {"N": "1"}, "name": {"S": "one"}},
    {"id": {"N": "2"}, "name": {"S": "two"}},
]


def _sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda i: sorted((k, str(v)) for k, v in i.items()))


def test_full_load_document_mapping_with_a_composite_key(
    tmp_path: Path, source: Path, target: str
) -> None:
    code, out = run(tmp_path, source, target)
    assert code == 0, out
    assert scan(target, "Employees") == _sorted(EMPLOYEES)
    assert scan(target, "plain") == _sorted(PLAIN)
    described = _client(target).describe_table(TableName=_prefix(target) + "Employees")["Table"]
    keys = {k["AttributeName"]: k["KeyType"] for k in described["KeySchema"]}
    assert keys == {"dept": "HASH", "emp_key": "RANGE"}
    stats = {t.name: t.full_load_rows for t in StateStore(tmp_path / "state.db").tables("ddb")}
    assert stats == {"employee": 3, "plain": 2}


def _put(url: str, table: str, item: dict[str, Any]) -> None:
    _client(url).put_item(TableName=_prefix(url) + table, Item=item)


@pytest.mark.parametrize(
    ("mode", "kept"),
    [("TRUNCATE_BEFORE_LOAD", False), ("DROP_AND_CREATE", False), ("DO_NOTHING", True)],
)
def test_prep_modes(tmp_path: Path, source: Path, target: str, mode: str, kept: bool) -> None:
    assert run(tmp_path, source, target)[0] == 0
    stray = {"id": {"N": "99"}, "name": {"S": "not in the source"}}
    _put(target, "plain", stray)
    settings = {"FullLoadSettings": {"TargetTablePrepMode": mode}}
    code, out = run(tmp_path, source, target, task_settings=settings)
    assert code == 0, out
    assert scan(target, "plain") == _sorted(PLAIN + ([stray] if kept else []))
    assert scan(target, "Employees") == _sorted(EMPLOYEES)


def test_an_item_over_400_kb_is_a_data_error(tmp_path: Path, source: Path, target: str) -> None:
    conn = sqlite3.connect(source)
    conn.execute("UPDATE plain SET big = ? WHERE id = 2", ("x" * 410_000,))
    conn.commit()
    conn.close()
    settings = {"ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}}
    code, out = run(tmp_path, source, target, task_settings=settings)
    assert code == 0, out
    assert scan(target, "plain") == [{"id": {"N": "1"}, "name": {"S": "one"}}]
    errors = StateStore(tmp_path / "state.db").data_errors("ddb")
    assert len(errors) == 1, errors
    assert "big" in str(errors[0]) and "409600" in str(errors[0])


def test_a_composite_key_of_three_columns_needs_a_mapping(
    tmp_path: Path, source: Path, target: str
) -> None:
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE wide (a INT, b INT, c INT, PRIMARY KEY (a, b, c))")
    conn.commit()
    conn.close()
    code, out = run(tmp_path, source, target)
    assert code != 0
    assert "table wide: its primary key has 3 columns (a, b, c)" in out, out
    assert scan(target, "plain") == _sorted(PLAIN)
