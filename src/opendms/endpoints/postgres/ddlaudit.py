"""Reading the DDL audit rows of a PostgreSQL stream (see :mod:`.ddl`): each row gives
a table's columns before and after one DDL command, by attribute number, so a rename is
told from a drop plus an add without parsing SQL."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from opendms.changes import Change, ColumnChange, Op, TableChange
from opendms.endpoints.postgres.ddl import AUDIT, ROW_PREFIX
from opendms.endpoints.postgres.types import from_pg
from opendms.errors import EndpointError
from opendms.model import Column, Table

log = logging.getLogger("opendms.postgres.ddl")


def _column(entry: list[Any]) -> Column:
    _num, name, formatted, notnull, typtype, labels = entry
    return Column(name, from_pg(formatted, typtype, tuple(labels)), nullable=not notnull)


def described_table(desc: dict[str, Any]) -> Table:
    """A source table from ``opendms_ddl_describe``'s JSON."""
    columns = tuple(_column(e) for e in desc["columns"])
    return Table(desc["schema"], desc["name"], columns, tuple(desc["key"]))


def column_changes(before: list[list[Any]], after: list[list[Any]]) -> tuple[ColumnChange, ...]:
    """What one DDL did to a table's columns, by attribute number: drops, renames, type
    changes, then additions (a nullability change alone is not followed, as in DMS)."""
    old = {e[0]: e for e in before}
    new = {e[0]: e for e in after}
    out = [ColumnChange("drop", old[n][1]) for n in old if n not in new]
    for num, entry in new.items():
        was = old.get(num)
        if was is not None and was[1] != entry[1]:
            out.append(ColumnChange("rename", was[1], new_name=entry[1]))
    for num, entry in new.items():
        was = old.get(num)
        if was is not None and (was[2], was[4], was[5]) != (entry[2], entry[4], entry[5]):
            column = _column(entry)
            out.append(ColumnChange("alter_type", entry[1], column.type, nullable=column.nullable))
    for num, entry in new.items():
        if num not in old:
            column = _column(entry)
            out.append(ColumnChange("add", entry[1], column.type, nullable=column.nullable))
    return tuple(out)


@dataclass
class AuditReader:
    """Turns the audit rows and row messages of the stream into :data:`Op.DDL` changes
    and inserts (for one task's publication)."""

    schema: str
    publication: str
    created: dict[int, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)

    def is_audit(self, change: Change) -> bool:
        return change.table == AUDIT and change.schema == self.schema

    def changes(self, change: Change) -> list[Change]:
        """The DDL changes of one audit-table change (its DELETE gives none)."""
        if change.op is not Op.INSERT:
            return []
        row = dict(zip(change.columns, change.values, strict=True))
        try:
            return self._row(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise EndpointError(
                f"{self.schema}.{AUDIT}", f"cannot read a DDL audit row ({exc}): {row!r:.200}"
            ) from exc

    def _row(self, row: dict[str, Any]) -> list[Change]:
        before = _json(row.get("c_before"))
        after = _json(row.get("c_after"))
        if after is None:
            return [_table_change(before, TableChange("drop"))]
        table = described_table(after)
        self._note(str(row.get("c_note") or ""), table)
        if self.publication in (_json(row.get("c_published")) or []):
            columns = tuple(c.name for c in table.columns)
            self.created[int(row["c_oid"])] = (table.schema, table.name, columns)
            create = TableChange("create", table)
            return [Change(Op.DDL, table.schema, table.name, table_ddl=create)]
        if before is None:  # a table not seen before: the engine compares its columns
            marker = TableChange("columns", table=table)
            return [Change(Op.DDL, table.schema, table.name, table_ddl=marker, stat="")]
        changes = []
        if (before["schema"], before["name"]) != (table.schema, table.name):
            rename = TableChange("rename", new_schema=table.schema, new_name=table.name)
            changes.append(_table_change(before, rename))
        ddl = column_changes(before["columns"], after["columns"])
        if ddl:
            changes.append(Change(Op.DDL, table.schema, table.name, ddl=ddl))
        return changes

    def _note(self, note: str, table: Table) -> None:
        """What kept a table the selection rules take out of this task's publication."""
        for part in note.split("; "):
            if part.startswith(f"{self.publication}: "):
                log.warning(
                    "table %s matches the selection rules but is not captured: %s",
                    table.qualified,
                    part.removeprefix(f"{self.publication}: "),
                )

    def row(self, prefix: str, content: str) -> Change | None:
        """An insert from an ``opendms_row:<oid>`` message (a row a table held when it
        joined the publication), or None for a table not created in this transaction."""
        oid = prefix[len(ROW_PREFIX) :]
        known = self.created.get(int(oid)) if oid.isdigit() else None
        if known is None:
            return None
        schema, name, columns = known
        try:
            values = json.loads(content)
        except ValueError as exc:
            raise EndpointError(f"{schema}.{name}", f"unreadable row message: {exc}") from exc
        if not isinstance(values, list) or len(values) != len(columns):
            raise EndpointError(f"{schema}.{name}", f"row message of another shape: {content:.80}")
        return Change(Op.INSERT, schema, name, columns, tuple(values))


def _json(text: Any) -> Any:
    return None if text is None else json.loads(text)


def _table_change(desc: dict[str, Any], change: TableChange) -> Change:
    return Change(Op.DDL, desc["schema"], desc["name"], table_ddl=change)
