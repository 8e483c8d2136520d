"""Selection rules' ``load-order`` (DMS guide, "Selection rules and actions"): tables of a
higher load order start loading first; with one sub-task they load one after another in
that order."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from opendms.config import task_from_dict
from opendms.engine import fullload
from opendms.service.run import run_task
from opendms.state import StateStore


def _rule(rid: int, table: str, order: int | None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "rule-type": "selection",
        "rule-id": str(rid),
        "rule-name": str(rid),
        "object-locator": {"schema-name": "main", "table-name": table},
        "rule-action": "include",
    }
    if order is not None:
        rule["load-order"] = order
    return rule


def test_higher_load_order_loads_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "src.db"
    with sqlite3.connect(source) as conn:
        for name in ("a", "b", "c", "d"):
            conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
            conn.execute(f"INSERT INTO {name} VALUES (1, '{name}')")
    started: list[str] = []
    original = fullload.FullLoad._submit

    def recording(self: Any, executor: Any, unit: Any, snap: Any) -> Any:
        started.append(unit.plan.source.name)
        return original(self, executor, unit, snap)

    monkeypatch.setattr(fullload.FullLoad, "_submit", recording)
    rules = [_rule(1, "a", 1), _rule(2, "b", 3), _rule(3, "c", None), _rule(4, "d", 2)]
    spec = task_from_dict(
        {
            "name": "order",
            "source": f"sqlite:///{source}",
            "target": f"sqlite:///{tmp_path / 'dst.db'}",
            "table_mappings": {"rules": rules},
            "task_settings": {"FullLoadSettings": {"MaxFullLoadSubTasks": 1}},
        },
        where="test",
    )
    run_task(spec, StateStore(tmp_path / "state.db"))
    assert started == ["b", "d", "a", "c"]  # load-order 3, 2, 1, then none (0)
    with sqlite3.connect(tmp_path / "dst.db") as conn:
        got = {n: conn.execute(f"SELECT id, v FROM {n}").fetchall() for n in "abcd"}
    assert got == {n: [(1, n)] for n in "abcd"}
