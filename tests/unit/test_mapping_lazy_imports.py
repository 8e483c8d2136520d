"""opendms.mapping imports neither sqlglot nor DuckDB, and sqlite3 only for expressions.

Each case runs in a fresh interpreter, since this test session has long since
imported both.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_SETUP = """
import json
import sys

HEAVY = ("duckdb", "sqlglot", "sqlite3")

import pyarrow as pa

from opendms.mapping import evaluate_outputs, parse_table_mappings
from opendms.model import Column, ColumnType, Kind, Table, TableRef

SRC = Table(
    "s",
    "t",
    (
        Column("id", ColumnType(Kind.INT64)),
        Column("a", ColumnType(Kind.INT32)),
        Column("b", ColumnType(Kind.INT32)),
        Column("name", ColumnType(Kind.STRING)),
    ),
    primary_key=("id",),
)
BATCH = pa.record_batch(
    {
        "id": pa.array([1, 2, 3], pa.int64()),
        "a": pa.array([5, 7, None], pa.int32()),
        "b": pa.array([2, 0, 4], pa.int32()),
        "name": pa.array(["x", None, "z"]),
    }
)


def rule(rid, rule_type, action, **extra):
    return {"rule-type": rule_type, "rule-id": rid, "rule-name": str(rid),
            "rule-action": action, **extra}


def column(rid, action, name=None, **extra):
    locator = {"schema-name": "s", "table-name": "t"}
    if name is not None:
        locator["column-name"] = name
    return rule(rid, "transformation", action, **{"rule-target": "column",
                "object-locator": locator, **extra})


def run(*rules):
    selection = rule(1, "selection", "include",
                     **{"object-locator": {"schema-name": "s", "table-name": "t"}})
    mappings = parse_table_mappings(json.dumps({"rules": [selection, *rules]}))
    assert mappings.select([TableRef("s", "t"), TableRef("s", "u")]) == [TableRef("s", "t")]
    plan = mappings.plan(SRC)
    out = evaluate_outputs(BATCH.select(list(plan.read_columns)), plan)
    return out.schema.names, out.to_pydict()
"""


def _run(body: str) -> dict[str, object]:
    code = textwrap.dedent(_SETUP) + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_mappings_without_expressions_import_neither_duckdb_nor_sqlglot_nor_sqlite() -> None:
    result = _run(
        """
        names, data = run(
            column(2, "rename", "name", value="full_name"),
            column(3, "remove-column", "b"),
            column(4, "change-data-type", "a", **{"data-type": {"type": "int8"}}),
            column(5, "add-column", value="extra", **{"data-type": {"type": "string"}}),
        )
        print(json.dumps({"names": names, "data": data,
                          "loaded": [m for m in HEAVY if m in sys.modules]}))
        """
    )
    assert result["loaded"] == []
    assert result["names"] == ["id", "a", "full_name", "extra"]
    assert result["data"] == {
        "id": [1, 2, 3],
        "a": [5, 7, None],
        "full_name": ["x", None, "z"],
        "extra": [None, None, None],
    }


def test_add_column_expressions_still_work() -> None:
    result = _run(
        """
        names, data = run(
            column(2, "remove-column", "b"),
            column(3, "add-column", value="label",
                   expression="$name || '-' || ($a / $b)",
                   **{"data-type": {"type": "string", "length": 20}}),
        )
        print(json.dumps({"names": names, "data": data,
                          "loaded": [m for m in HEAVY if m in sys.modules]}))
        """
    )
    assert result["loaded"] == ["sqlite3"]  # DMS evaluates expressions with SQLite
    assert result["names"] == ["id", "a", "name", "label"]
    assert result["data"] == {
        "id": [1, 2, 3],
        "a": [5, 7, None],
        "name": ["x", None, "z"],
        "label": ["x-2", None, None],
    }
