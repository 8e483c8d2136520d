"""The source's tables as the change stream reaches each change, in commit order.

:class:`SchemaFollower` runs on the stream before changes are batched. It keeps each
captured source table as the changes so far left it, so that:

* text values (PostgreSQL's) are converted with the column types of the moment (a value
  after ``ALTER COLUMN ... TYPE`` or in a column added in the same transaction is read
  with its new type, one before it with the old);
* a created table joins the task when the selection rules take it (``plan_new``), and
  its transformation rules apply from its first change; renames and drops move or
  forget the table;
* a ``columns`` marker (what a PostgreSQL relation message says the source sends now)
  that differs from what is known becomes column changes: ADD for a new name, ALTER
  TYPE for a changed type. That is the fallback when a DDL was not captured
  (CaptureDdls=false, or a DDL the event trigger did not see). A column no longer sent
  is kept and named in a warning: without DDL capture a rename cannot be told from a
  drop, and keeping the column loses nothing. Markers that agree are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from opendms.changes import ApplyPlan, Change, ColumnChange, Op, Transaction
from opendms.engine.ddl import evolve
from opendms.engine.transform import needs_transform
from opendms.errors import DataError
from opendms.mapping import TablePlan
from opendms.model import ColumnType, Table

log = logging.getLogger("opendms.follow")
TableKey = tuple[str, str]
Convert = Callable[[str], Any]


def evolve_table(table: Table, ddl: tuple[ColumnChange, ...]) -> Table:
    """``table`` after the column changes ``ddl``."""
    return evolve(ApplyPlan(table, table, {}), ddl).source


class SchemaFollower:
    """Follows DDL on the stream and converts the source's text values to Python form
    with ``converter`` (a column type's text converter; None: values are Python)."""

    def __init__(
        self,
        tables: dict[TableKey, Table],
        transformed: dict[TableKey, TablePlan],
        plan_new: Callable[[Table], TablePlan | None],
        converter: Callable[[ColumnType], Convert] | None,
    ) -> None:
        self.tables = dict(tables)
        self.transformed = transformed  # shared with the engine and its Transformer
        self.plan_new = plan_new
        self.converter = converter
        self.convert = converter is not None
        self.created: dict[TableKey, TablePlan] = {}  # planned here, created on apply
        self.warned: set[tuple[TableKey, str]] = set()
        self.cache: dict[TableKey, tuple[Table, dict[str, Convert]]] = {}

    def __call__(self, txn: Transaction) -> Transaction:
        if not self.convert and not any(c.op is Op.DDL for c in txn.changes):
            return txn
        return replace(txn, changes=[c for change in txn.changes for c in self.one(change)])

    def one(self, change: Change) -> list[Change]:
        """One change in stream order: DDL followed, values converted (a value that
        cannot be converted raises DataError naming its column)."""
        if change.op is Op.DDL:
            return self._ddl(change)
        if self.convert and change.op is not Op.TRUNCATE:
            return [self._converted(change)]
        return [change]

    # -- DDL

    def _ddl(self, change: Change) -> list[Change]:
        key = (change.schema, change.table)
        action = change.table_ddl.action if change.table_ddl is not None else "alter"
        if action == "alter":
            if key not in self.tables:
                return []  # a table this task does not capture
            self.tables[key] = evolve_table(self.tables[key], change.ddl)
            return [change]
        if action == "columns":
            return self._reconcile(change)
        if action == "create":
            return self._create(change)
        table = self.tables.pop(key, None)
        plan = self.transformed.pop(key, None)
        if table is None:
            return []
        if action == "rename" and change.table_ddl is not None:
            new = (change.table_ddl.new_schema, change.table_ddl.new_name)
            self.tables[new] = replace(table, schema=new[0], name=new[1])
            if plan is not None:
                self.transformed[new] = replace(plan, source=self.tables[new])
        return [change]

    def _create(self, change: Change) -> list[Change]:
        table = change.table_ddl.table if change.table_ddl is not None else None
        if table is None:
            return []
        plan = self.plan_new(table)
        if plan is None:
            return []
        key = (table.schema, table.name)
        self.tables[key] = table
        self.created[key] = plan
        if needs_transform(plan):
            self.transformed[key] = plan
        return [change]

    def _reconcile(self, change: Change) -> list[Change]:
        key = (change.schema, change.table)
        known = self.tables.get(key)
        sent = change.table_ddl.table if change.table_ddl is not None else None
        if known is None or sent is None:
            return []
        have = {c.name: c for c in known.columns}
        ddl: list[ColumnChange] = []
        for col in sent.columns:
            was = have.get(col.name)
            if was is None:
                ddl.append(ColumnChange("add", col.name, col.type))
            elif was.type != col.type:
                ddl.append(ColumnChange("alter_type", col.name, col.type, nullable=was.nullable))
        self._warn_gone(key, known, {c.name for c in sent.columns})
        if not ddl:
            return []
        log.warning(
            "table %s.%s: the source sends other columns than the captured DDL said "
            "(CaptureDdls=false, or a DDL the event trigger did not see); following it: %s",
            *key,
            ", ".join(f"{c.action} {c.column}" for c in ddl),
        )
        self.tables[key] = evolve_table(known, tuple(ddl))
        return [Change(Op.DDL, change.schema, change.table, ddl=tuple(ddl), origin=change.origin)]

    def _warn_gone(self, key: TableKey, known: Table, sent: set[str]) -> None:
        for col in known.columns:
            if col.name not in sent and (key, col.name) not in self.warned:
                self.warned.add((key, col.name))
                log.warning(
                    "table %s.%s: column %s is no longer sent by the source (dropped or "
                    "renamed without DDL capture); the target keeps it, later rows leave it "
                    "empty. Set CaptureDdls=true to follow drops and renames",
                    *key,
                    col.name,
                )

    # -- values

    def _converters(self, key: TableKey) -> dict[str, Convert] | None:
        table, converter = self.tables.get(key), self.converter
        if table is None or converter is None:
            return None
        hit = self.cache.get(key)
        if hit is None or hit[0] is not table:
            hit = self.cache[key] = (table, {c.name: converter(c.type) for c in table.columns})
        return hit[1]

    def _converted(self, change: Change) -> Change:
        funcs = self._converters((change.schema, change.table))
        if funcs is None:
            return change
        return replace(
            change,
            values=_row(change, funcs, change.columns, change.values),
            key=_row(change, funcs, change.key_columns, change.key),
            old_values=_row(change, funcs, change.old_columns, change.old_values),
        )


def _row(
    change: Change, funcs: dict[str, Convert], cols: tuple[str, ...], values: tuple[Any, ...]
) -> tuple[Any, ...]:
    out = []
    for col, value in zip(cols, values, strict=True):
        if not isinstance(value, str):
            out.append(value)  # None or UNCHANGED
            continue
        try:
            out.append(funcs[col](value))
        except (ValueError, KeyError) as exc:
            raise DataError(
                f"{change.schema}.{change.table}",
                f"column {col}: value {value[:40]!r} cannot be carried: {exc}",
                column=col,
            ) from exc
    return tuple(out)
