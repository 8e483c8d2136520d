"""Following source schema changes: a column change turns into a new ApplyPlan."""

from __future__ import annotations

from dataclasses import replace

from opendms.cdc import ApplyPlan, ColumnChange
from opendms.model import Column, ColumnType, Table


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
