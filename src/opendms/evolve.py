"""Column changes on a source table and its target table, written once: how a table
pair (an :class:`~opendms.changes.ApplyPlan`: source, target, copied columns) looks after a
captured ``ADD``/``DROP``/``RENAME``/``ALTER TYPE``. ``ApplyPlan.after`` is the way in;
the CDC engine follows the source with it and every applier what it applied."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from opendms.errors import TaskError
from opendms.model import Column, ColumnType, Table


class ColumnEdit(Protocol):
    """A column change as :class:`opendms.changes.ColumnChange` carries it."""

    @property
    def action(self) -> Literal["add", "drop", "alter_type", "rename"]: ...
    @property
    def column(self) -> str: ...
    @property
    def ctype(self) -> ColumnType | None: ...
    @property
    def new_name(self) -> str | None: ...
    @property
    def nullable(self) -> bool: ...


@dataclass(frozen=True)
class Pair:
    """A source table, its target table and the copied columns (source -> target)."""

    source: Table
    target: Table
    names: dict[str, str]


def plan_after(plan: Pair, cc: ColumnEdit) -> Pair:
    """``plan`` once ``cc`` ran on the source table and, applied, on the target (new
    source columns land in target columns of the same name; a column not copied is left
    alone on the target)."""
    name = cc.column if cc.action == "add" else plan.names.get(cc.column)
    if cc.action == "add":
        return _added(plan, cc)
    if cc.action == "drop":
        names = {s: t for s, t in plan.names.items() if s != cc.column}
        return replace(
            plan,
            source=_without(plan.source, cc.column),
            target=_without(plan.target, name),
            names=names,
        )
    if cc.action == "rename":
        return _renamed_in(plan, cc, name)
    if cc.ctype is None:
        raise TaskError(f"table {plan.source.qualified}: column {cc.column} changed to no type")
    source = _retyped(plan.source, cc.column, cc.ctype, cc.nullable)
    return replace(plan, source=source, target=_retyped(plan.target, name, cc.ctype, cc.nullable))


def _added(plan: Pair, cc: ColumnEdit) -> Pair:
    if cc.ctype is None:
        raise TaskError(f"table {plan.source.qualified}: added column {cc.column} has no type")
    if cc.column in plan.names and any(c.name == cc.column for c in plan.source.columns):
        return plan  # a DDL seen again (a retried batch)
    col = Column(cc.column, cc.ctype, cc.nullable)
    source = replace(plan.source, columns=(*_without(plan.source, col.name).columns, col))
    target = plan.target
    if col.name not in {c.name for c in target.columns}:
        target = replace(target, columns=(*target.columns, col))
    return replace(plan, source=source, target=target, names={**plan.names, col.name: col.name})


def _renamed_in(plan: Pair, cc: ColumnEdit, name: str | None) -> Pair:
    new = cc.new_name or cc.column
    names = {(new if s == cc.column else s): t for s, t in plan.names.items()}
    if name is not None:
        names[new] = new
    source = _renamed(plan.source, cc.column, new)
    return replace(plan, source=source, target=_renamed(plan.target, name, new), names=names)


def _edit(table: Table, fn: Callable[[Column], Column | None]) -> tuple[Column, ...]:
    return tuple(c for c in (fn(col) for col in table.columns) if c is not None)


def _without(table: Table, name: str | None) -> Table:
    key = tuple(k for k in table.primary_key if k != name)
    return replace(
        table, columns=_edit(table, lambda c: None if c.name == name else c), primary_key=key
    )


def _renamed(table: Table, old: str | None, new: str) -> Table:
    if old is None:
        return table
    columns = _edit(table, lambda c: c.renamed(new) if c.name == old else c)
    key = tuple(new if k == old else k for k in table.primary_key)
    return replace(table, columns=columns, primary_key=key)


def _retyped(table: Table, name: str | None, ctype: ColumnType, nullable: bool) -> Table:
    def change(c: Column) -> Column:
        return replace(c, type=ctype, nullable=nullable) if c.name == name else c

    return replace(table, columns=_edit(table, change))
