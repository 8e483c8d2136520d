"""The LOB settings on the changes of tables whose rows are not rewritten by
:class:`opendms.engine.transform.Transformer` (that one cuts LOBs itself, through
``evaluate_outputs``). Each table has its own settings: the task's, or its
table-settings rule's ``lob-settings`` (:meth:`opendms.mapping.TableMappings.lob_policy`).

Limited LOB mode: each LOB value of an insert or update longer than the table's limit
(``LobMaxSize``, or its ``bulk-max-size``) is cut (as in the full load,
:mod:`opendms.mapping.lobs`) and ``DataTruncationErrorPolicy`` decides about the
change; a JSON or XML document or a key value over the limit is a DataError
(``DataErrorPolicy``). The old row a change carries (its key, or the whole old row:
REPLICA IDENTITY FULL, a full row image) is cut the same way, without a second record, so
that it finds the row the target holds; for every table, including those the Transformer
rewrites. The column types are those of the source table as the stream reaches the
change, so a LOB column added during CDC is limited too.

``SupportLobs`` false acts on the columns of the tables as planned (at the start, or
when a table is created during CDC): a LOB column added by ``ALTER TABLE`` during CDC
is carried to the target like any new column, with a warning (reloading the table
leaves it out).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from opendms.changes import UNCHANGED, Change, Op
from opendms.mapping.expressions import truncation_reason
from opendms.mapping.lobs import LobPolicy, cut_value, is_lob, limited_value, truncatable
from opendms.model import Table

log = logging.getLogger("opendms.replicate")
TableKey = tuple[str, str]
OnTruncation = Callable[[Change, str, str], bool]


class LobCutter:
    """One step of the change pipeline (after the schema follower).

    ``policy``: the LOB settings of a source table; ``tables``: the source tables as the
    stream reaches each change (the follower's), read at each change; ``skip``: tables
    whose changes the Transformer rewrites."""

    def __init__(
        self,
        policy: Callable[[TableKey], LobPolicy],
        tables: Callable[[], dict[TableKey, Table]],
        skip: dict[TableKey, Any],
        on_truncation: OnTruncation,
    ) -> None:
        self.policy_of = policy
        self.policies: dict[TableKey, LobPolicy] = {}
        self.tables = tables
        self.skip = skip
        self.on_truncation = on_truncation
        self.warned: set[tuple[TableKey, str]] = set()
        # per table: (the Table it was computed for, its LOB columns, those it may cut)
        self.columns: dict[TableKey, tuple[Table, dict[str, Any], set[str]]] = {}

    def one(self, change: Change) -> list[Change]:
        key = (change.schema, change.table)
        if change.op is Op.DDL:
            self._warn_added(key, change)
            return [change]
        if change.op is Op.TRUNCATE:
            return [change]
        policy = self.policy(key)
        limit = policy.max_bytes
        if limit is None:
            return [change]
        table = self.tables().get(key)
        if table is None:
            return [change]
        lobs, cuttable = self._lobs(key, table)
        if not lobs:
            return [change]
        old = change
        old_key = _cut(change.key_columns, change.key, cuttable, limit)
        old_values = _cut(change.old_columns, change.old_values, cuttable, limit)
        if old_key is not change.key or old_values is not change.old_values:
            old = replace(change, key=old_key, old_values=old_values)
        if key in self.skip:
            return [old]  # its new values are cut by the Transformer
        return self._limited(old, lobs, cuttable, limit, policy.setting)

    def policy(self, key: TableKey) -> LobPolicy:
        """The LOB settings of the table ``key`` (looked up once)."""
        found = self.policies.get(key)
        if found is None:
            found = self.policies[key] = self.policy_of(key)
        return found

    def _lobs(self, key: TableKey, table: Table) -> tuple[dict[str, Any], set[str]]:
        """The table's LOB columns (name -> type) and those that may be cut (not JSON or
        XML, not in the primary key); recomputed when the table changed."""
        known = self.columns.get(key)
        if known is None or known[0] is not table:
            lobs = {c.name: c.type for c in table.columns if is_lob(c.type)}
            cuttable = {n for n, t in lobs.items() if truncatable(t)} - set(table.primary_key)
            known = self.columns[key] = (table, lobs, cuttable)
        return known[1], known[2]

    def _limited(
        self, change: Change, lobs: dict[str, Any], cuttable: set[str], limit: int, setting: str
    ) -> list[Change]:
        """The new values of an insert or update cut to ``limit``, each cut reported."""
        name = f"{change.schema}.{change.table}"
        cut: list[str] = []
        values = []
        for column, value in zip(change.columns, change.values, strict=True):
            kept = value
            if column in lobs and value is not None and value is not UNCHANGED:
                kept = limited_value(value, limit, column in cuttable, column, name, setting)
                if kept is not value:
                    cut.append(column)
            values.append(kept)
        reason = truncation_reason(limit, lob=True, setting=setting)
        for column in cut:
            if not self.on_truncation(change, column, f"column {column}: {reason}"):
                return []
        return [replace(change, values=tuple(values))] if cut else [change]

    def _warn_added(self, key: TableKey, change: Change) -> None:
        """SupportLobs false: a LOB column added during CDC is carried (see above)."""
        if not self.policy(key).drop or key in self.skip:
            return
        for cc in change.ddl:
            if cc.action != "add" or cc.ctype is None or not is_lob(cc.ctype):
                continue
            if (key, cc.column) in self.warned:
                continue
            self.warned.add((key, cc.column))
            log.warning(
                "table %s.%s: LOB column %s added on the source during CDC is carried to "
                "the target (TargetMetadata.SupportLobs false leaves out the LOB columns a "
                "table has when it is planned; reload the table to leave it out)",
                *key,
                cc.column,
            )


def _cut(
    columns: tuple[str, ...], values: tuple[Any, ...], cuttable: set[str], limit: int
) -> tuple[Any, ...]:
    """An old row (key or old image) with its LOBs cut as the target holds them, so that
    it still finds the row there; not recorded again, and values that cannot be cut
    stay."""
    if not values or not cuttable.intersection(columns):
        return values
    cut = tuple(
        cut_value(v, limit) if c in cuttable and v is not None and v is not UNCHANGED else v
        for c, v in zip(columns, values, strict=True)
    )
    return values if all(a is b for a, b in zip(cut, values, strict=True)) else cut
