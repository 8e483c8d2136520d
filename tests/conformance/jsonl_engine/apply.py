"""CDC apply to a ``jsonl://`` folder: a batch rewrites the files of the tables it
touches (each atomically), then the task's checkpoint file, so a crash repeats at most
the last batch, which the engine layer then applies idempotently."""

from __future__ import annotations

import json
from typing import Any

from opendms.changes import UNCHANGED, ApplyPlan, Change, Op, Transaction
from tests.conformance.jsonl_engine.files import Folder, Row, dumps, plain

Rows = dict[str, Row]
"""A table's rows by their key (the key's values as JSON text)."""


class JsonlApplier:
    """Applies row changes by key; the error policies of the task are not applied."""

    def __init__(self, folder: Folder, task: str, plans: list[ApplyPlan]) -> None:
        self.folder, self.task = folder, task
        self.plans = {(p.source.schema, p.source.name): p for p in plans}
        self.checkpoint = folder.root / f"_checkpoint.{task}.json"

    def read_checkpoint(self) -> str | None:
        if not self.checkpoint.exists():
            return None
        position: str = json.loads(self.checkpoint.read_text())["position"]
        return position

    def write_checkpoint(self, position: str) -> None:
        self.folder.replace(self.checkpoint, [json.dumps({"position": position})])

    def apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        """Apply every row change (an update of a missing row inserts its after-image,
        a delete of a missing row does nothing, whatever ``idempotent`` says)."""
        touched: dict[tuple[str, str], Rows] = {}
        count = 0
        for change in (c for txn in batch for c in txn.changes if c.op is not Op.DDL):
            plan = self.plans[(change.schema, change.table)]
            rows = touched.get((change.schema, change.table))
            if rows is None:
                rows = touched[(change.schema, change.table)] = self._load(plan)
            _apply(plan, rows, change)
            count += 1
        for key, rows in touched.items():
            target = self.plans[key].target
            path = self.folder.path(target.schema, target.name)
            self.folder.replace(path, (dumps(row) for row in rows.values()))
        self.write_checkpoint(position)
        return count

    def schema_changed(self, plan: ApplyPlan) -> None:
        self.plans[(plan.source.schema, plan.source.name)] = plan
        self.folder.save_schema(plan.target)

    def table_dropped(self, schema: str, table: str) -> None:
        self.plans.pop((schema, table), None)

    def batch_hint(self) -> tuple[float, int] | None:
        return None

    def must_flush_at(self) -> str | None:
        return None

    def close(self) -> None:
        """Nothing is held open."""

    def _load(self, plan: ApplyPlan) -> Rows:
        rows = self.folder.rows(plan.target.schema, plan.target.name)
        return {_key(plan, row): row for row in rows}


def _key(plan: ApplyPlan, row: Row) -> str:
    """A row's key: its primary key's values (a table without one: the whole row)."""
    names = plan.target.primary_key or tuple(c.name for c in plan.target.columns)
    return dumps([row.get(name) for name in names])


def _target(plan: ApplyPlan, values: dict[str, Any]) -> Row:
    return {plan.names.get(n, n): v if v is UNCHANGED else plain(v) for n, v in values.items()}


def _apply(plan: ApplyPlan, rows: Rows, change: Change) -> None:
    if change.op is Op.TRUNCATE:
        rows.clear()
        return
    old = None
    if change.op is not Op.INSERT:
        old = rows.pop(_key(plan, _target(plan, change.before())), None)
    if change.op is Op.DELETE:
        return
    new = _target(plan, dict(zip(change.columns, change.values, strict=True)))
    row = {c.name: (old or {}).get(c.name) for c in plan.target.columns}
    row.update({n: v for n, v in new.items() if v is not UNCHANGED})
    rows[_key(plan, row)] = row
