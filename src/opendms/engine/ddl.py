"""Following source schema changes: a column change turns into a new ApplyPlan."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from opendms.cdc import ApplyPlan, ColumnChange
from opendms.model import Column, ColumnType, Index, Table


def evolve(plan: ApplyPlan, changes: tuple[ColumnChange, ...]) -> ApplyPlan:
    """The plan after ``changes`` ran on the source table (and, applied, on the target).

    New source columns land in target columns of the same name.
    """
    for change in changes:
        plan = _one(plan, change)
    return plan


def _one(plan: ApplyPlan, cc: ColumnChange) -> ApplyPlan:
    names = dict(plan.names)
    target_name = names.get(cc.column, cc.column)
    if cc.action == "add" and cc.ctype is not None:
        if cc.column in names:
            return plan  # a retried DDL
        names[cc.column] = cc.column
        column = Column(cc.column, cc.ctype, cc.nullable)
        return ApplyPlan(_add(plan.source, column), _add(plan.target, column), names)
    if cc.action == "drop":
        names.pop(cc.column, None)
        return ApplyPlan(_drop(plan.source, cc.column), _drop(plan.target, target_name), names)
    if cc.action == "alter_type" and cc.ctype is not None:
        return ApplyPlan(
            _retype(plan.source, cc.column, cc.ctype, cc.nullable),
            _retype(plan.target, target_name, cc.ctype, cc.nullable),
            names,
        )
    if cc.action == "rename" and cc.new_name:
        new = cc.new_name
        names = {
            (new if s == cc.column else s): (new if s == cc.column else t) for s, t in names.items()
        }
        return ApplyPlan(
            _rename(plan.source, cc.column, new), _rename(plan.target, target_name, new), names
        )
    return plan


def _add(table: Table, column: Column) -> Table:
    if any(c.name == column.name for c in table.columns):
        return table
    return replace(table, columns=(*table.columns, column))


def _drop(table: Table, name: str) -> Table:
    return replace(table, columns=tuple(c for c in table.columns if c.name != name))


def _retype(table: Table, name: str, ctype: ColumnType, nullable: bool) -> Table:
    cols = tuple(
        replace(c, type=ctype, nullable=nullable) if c.name == name else c for c in table.columns
    )
    return replace(table, columns=cols)


def _rename(table: Table, old: str, new: str) -> Table:
    cols = tuple(c.renamed(new) if c.name == old else c for c in table.columns)
    key = tuple(new if k == old else k for k in table.primary_key)
    return replace(table, columns=cols, primary_key=key)


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
