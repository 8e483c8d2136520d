"""The ``opendms:`` Task resources on their own: ``sql`` (values as JSON holds them,
named parameters, errors), ``task.run`` (a SQLite -> SQLite full load run to its end)
and the bad input they refuse."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from opendms.errors import ConfigError
from opendms.workflows.actions import Actions
from opendms.workflows.definition import parse
from opendms.workflows.run import Execution, StatesError


def _db(tmp_path: Path) -> str:
    path = tmp_path / "shop.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price NUMERIC, raw BLOB);"
        "INSERT INTO items VALUES (1, 'pen', 1.5, x'00ff'), (2, 'ink', 20, NULL);"
    )
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_sql_gives_rows_and_counts(tmp_path: Path) -> None:
    actions = Actions({"shop": _db(tmp_path)})
    got = actions(
        "opendms:sql",
        {"Endpoint": "shop", "Statement": "SELECT * FROM items WHERE id >= ?", "Parameters": [1]},
    )
    assert got == {
        "RowCount": 2,
        "Rows": [
            {"id": 1, "name": "pen", "price": 1.5, "raw": "AP8="},
            {"id": 2, "name": "ink", "price": 20, "raw": None},
        ],
    }
    changed = actions(
        "opendms:sql",
        {
            "Endpoint": "shop",
            "Statement": "UPDATE items SET name = upper(name) WHERE id = ?",
            "Parameters": {"wanted": 2, "other": 9},
            "ParameterNames": ["wanted"],
        },
    )
    assert changed == {"Rows": [], "RowCount": 1}
    again = actions("opendms:sql", {"Endpoint": "shop", "Statement": "SELECT name FROM items"})
    assert [r["name"] for r in again["Rows"]] == ["pen", "INK"]  # committed


def test_bad_parameters_are_named(tmp_path: Path) -> None:
    actions = Actions({"shop": _db(tmp_path)})
    with pytest.raises(ConfigError, match="'nope' is not an endpoint given with --endpoint"):
        actions("opendms:sql", {"Endpoint": "nope", "Statement": "SELECT 1"})
    with pytest.raises(ConfigError, match="the Parameters need 'Statement'"):
        actions("opendms:sql", {"Endpoint": "shop"})
    with pytest.raises(ConfigError, match="ParameterNames: the Parameters have no b"):
        actions(
            "opendms:sql",
            {
                "Endpoint": "shop",
                "Statement": "SELECT ?",
                "Parameters": {"a": 1},
                "ParameterNames": ["b"],
            },
        )
    with pytest.raises(StatesError, match="no such resource: opendms:nope"):
        actions("opendms:nope", {})


def test_a_database_error_fails_the_task_and_can_be_caught(tmp_path: Path) -> None:
    machine = parse(
        json.dumps(
            {
                "StartAt": "Q",
                "States": {
                    "Q": {
                        "Type": "Task",
                        "Resource": "opendms:sql",
                        "Parameters": {"Endpoint": "shop", "Statement": "SELECT * FROM nope"},
                        "Catch": [{"ErrorEquals": ["OperationalError"], "Next": "Done"}],
                        "End": True,
                    },
                    "Done": {"Type": "Pass", "End": True},
                },
            }
        )
    )
    out = Execution(machine, Actions({"shop": _db(tmp_path)})).run({})
    assert out["Error"] == "OperationalError" and "no such table: nope" in out["Cause"]


def _copy_task(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A full-load task file copying the shop database to ``copy.db``, and that path."""
    target = tmp_path / "copy.db"
    file = tmp_path / "task.json"
    task = {"name": name, "source": _db(tmp_path), "target": f"sqlite:///{target}"}
    file.write_text(json.dumps({**task, "migration_type": "full-load"}))
    return file, target


def test_task_run_runs_a_migration_task_to_its_end(tmp_path: Path) -> None:
    file, target = _copy_task(tmp_path, "copy-shop")
    actions = Actions({}, tmp_path / "state.db")
    got = actions("opendms:task.run", {"File": str(file)})
    assert got["Task"] == "copy-shop" and got["Status"] == "stopped"
    assert [(t["Table"], t["FullLoadRows"]) for t in got["Tables"]] == [("items", 2)]
    conn = sqlite3.connect(target)
    rows = conn.execute("SELECT id, name, raw FROM items ORDER BY id").fetchall()
    conn.close()
    assert rows == [(1, "pen", b"\x00\xff"), (2, "ink", None)]
    again = actions("opendms:task.run", {"Task": "copy-shop"})  # by name, from its file
    assert again["Tables"][0]["FullLoadRows"] == 2


def test_validate_passes_then_fails_with_validation_failed(tmp_path: Path) -> None:
    file, target = _copy_task(tmp_path, "copy-check")
    actions = Actions({}, tmp_path / "state.db")
    actions("opendms:task.run", {"File": str(file)})
    good = actions("opendms:validate", {"Task": "copy-check"})
    assert [(t["table"], t["state"]) for t in good["tables"]] == [("main.items", "Validated")]
    conn = sqlite3.connect(target)
    conn.execute("UPDATE items SET name = 'pencil' WHERE id = 1")
    conn.commit()
    conn.close()
    with pytest.raises(
        Exception, match=r"task copy-check: not validated: main.items \(Mismatched records\)"
    ) as bad:
        actions("opendms:validate", {"File": str(file)})
    assert type(bad.value).__name__ == "ValidationFailed"
    told = actions("opendms:validate", {"File": str(file), "FailOnMismatch": False})
    assert told["tables"][0]["mismatches"] == 1


def test_query_joins_two_endpoints_and_the_package_boundary_holds(tmp_path: Path) -> None:
    shop = _db(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    prices = _db(other)
    actions = Actions({"shop": shop, "prices": prices})
    got = actions(
        "opendms:query",
        {
            "Query": "SELECT s.name, p.price FROM shop.main.items s JOIN prices.main.items p"
            " ON s.id = p.id WHERE s.id = 1"
        },
    )
    assert got["Rows"] == [{"name": "pen", "price": "1.5"}] and got["RowCount"] == 1  # exact
    assert sorted((s["Endpoint"], s["Rows"]) for s in got["Sources"]) == [
        ("prices", 1),
        ("shop", 1),
    ]  # the key was pushed to both sides
    with pytest.raises(Exception, match="cannot hold files"):
        actions("opendms:export", {"Endpoint": "shop", "Query": "SELECT 1 AS x",
                                   "Lake": "shop", "Key": "x.csv"})  # fmt: skip
