"""Following source schema changes: a column change turns into a new ApplyPlan."""

from __future__ import annotations

import json
from typing import Any

from opendms.changes import ApplyPlan, ColumnChange
from opendms.model import Column, ColumnType, Index, Table


def evolve(plan: ApplyPlan, changes: tuple[ColumnChange, ...]) -> ApplyPlan:
    """The plan after ``changes`` ran on the source table (and, applied, on the target):
    :meth:`ApplyPlan.after` for each; a change that says too little to act on (an added
    or retyped column without its type) leaves the plan as it is."""
    for change in changes:
        if change.ctype is not None or change.action in ("drop", "rename"):
            plan = plan.after(change)
    return plan


def plans_to_json(plans: list[ApplyPlan]) -> str:
    return json.dumps([_plan_json(p) for p in plans])


def plans_from_json(text: str) -> list[ApplyPlan]:
    return [_plan_from(d) for d in json.loads(text)]


def _plan_json(plan: ApplyPlan) -> dict[str, Any]:
    return {
        "source": _table_json(plan.source),
        "target": _table_json(plan.target),
        "names": plan.names,
    }


def _plan_from(data: dict[str, Any]) -> ApplyPlan:
    return ApplyPlan(_table_from(data["source"]), _table_from(data["target"]), data["names"])


def _table_json(table: Table) -> dict[str, Any]:
    return {
        "schema": table.schema,
        "name": table.name,
        "columns": [[c.name, c.type.to_json(), c.nullable] for c in table.columns],
        "primary_key": list(table.primary_key),
        "indexes": [[i.name, list(i.columns), i.unique] for i in table.indexes],
    }


def _table_from(data: dict[str, Any]) -> Table:
    return Table(
        data["schema"],
        data["name"],
        tuple(Column(n, ColumnType.from_json(t), nullable) for n, t, nullable in data["columns"]),
        tuple(data["primary_key"]),
        tuple(Index(n, tuple(cols), unique) for n, cols, unique in data["indexes"]),
    )
