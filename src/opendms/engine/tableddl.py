"""Table-level DDL during CDC: a source table created, dropped or renamed is so on the
target, before the transaction that did it is applied (each step does nothing when it
was already done, so a batch retried after a crash is safe).

* create (a table the selection rules take): the target table is prepared as a full
  load would prepare it (``TargetTablePrepMode``) and captured from then on;
* drop: the target table is dropped (DMS's default ``HandleSourceTableDropped``); a
  lake keeps the table's files;
* rename: the target table gets the name the mapping rules give the new source name;
  changes of the renaming transaction made before the rename land in it too. A lake
  writes the later files into the new table's folder.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from opendms.changes import Applier, ApplyPlan
from opendms.config import TaskSpec
from opendms.endpoints import table_identity
from opendms.endpoints.base import Target
from opendms.endpoints.engine import SameEngineTarget
from opendms.engine.follow import SchemaFollower
from opendms.engine.fullload import FullLoad
from opendms.engine.transform import output_plan
from opendms.errors import ConfigError
from opendms.mapping import TableMappings, TablePlan
from opendms.model import Table, TableRef
from opendms.state import StateStore, TableState

log = logging.getLogger("opendms.replicate")
TableKey = tuple[str, str]


def new_table_rules(
    mappings: TableMappings, plans: list[TablePlan], same_database: bool
) -> list[tuple[str, str, bool]]:
    """The selection rules as (schema regex, table regex, exclude), for a source that
    decides itself which new tables to capture. When the target is the source database,
    the task's own target tables and opendms's schema are excluded: never captured back."""
    rules = [
        (r.schema.regex, r.table.regex if r.table is not None else ".*", r.action == "exclude")
        for r in mappings.selections
    ]
    if same_database:
        rules += [(re.escape(p.target.schema), re.escape(p.target.name), True) for p in plans]
        rules.append(("opendms", ".*", True))
    return rules


def plan_created(loader: FullLoad, table: Table, own: list[Table] | None) -> TablePlan | None:
    """The plan of a table created on the source, or None when the task does not take it:
    not selected, its mapping rules do not fit it, or (``own``: the task's target tables
    when the target is the source database, else None) it is one of the task's own
    targets or would load into itself."""
    ref = TableRef(table.schema, table.name)
    url = loader.target.url
    mine = {table_identity(url, t.schema, t.name) for t in own or ()}
    if not loader.mappings.is_selected(ref) or table_identity(url, ref.schema, ref.name) in mine:
        return None
    try:
        plan = loader.planner.plan_one(table)
    except ConfigError as exc:
        log.warning("table %s created on the source is not captured: %s", table.qualified, exc)
        return None
    if own is not None and table_identity(url, plan.target.schema, plan.target.name) == (
        table_identity(url, ref.schema, ref.name)
    ):
        log.warning("table %s created on the source would load into itself", table.qualified)
        return None
    return plan


def apply_plan(plan: TablePlan) -> ApplyPlan:
    names = {o.source: o.name for o in plan.outputs if o.source is not None}
    return ApplyPlan(plan.source, plan.target, names)


@dataclass
class TableDdl:
    """Carries table-level DDL to the target; ``plans`` is the engine's, by source key."""

    spec: TaskSpec
    target: Target
    loader: FullLoad
    store: StateStore
    plans: dict[TableKey, ApplyPlan]
    follower: SchemaFollower
    same_engine: bool

    def create(self, applier: Applier, key: TableKey) -> None:
        plan = self.follower.created.pop(key, None)
        if plan is None:
            return
        if isinstance(self.target, SameEngineTarget):
            self.target.same_engine = self.same_engine
        mode = self.spec.task_settings.FullLoadSettings.TargetTablePrepMode
        self.target.prepare(plan.target, mode)
        self.target.finish(plan.target)
        made = output_plan(plan) if key in self.follower.transformed else apply_plan(plan)
        self.plans[key] = made
        applier.schema_changed(made)
        self._captured(key, keep=False)
        log.info("table %s.%s created on the source: created as %s", *key, plan.target.qualified)

    def drop(self, applier: Applier, key: TableKey) -> None:
        plan = self.plans.pop(key, None)
        if plan is None:
            return
        policy = self.spec.task_settings.ChangeProcessingDdlHandlingPolicy
        if not policy.HandleSourceTableDropped:
            applier.table_dropped(*key)
            log.info("table %s.%s dropped on the source: the target table is kept", *key)
            return
        self.target.drop_table(plan.target)
        applier.table_dropped(*key)
        log.info("table %s.%s dropped on the source: dropped %s", *key, plan.target.qualified)

    def rename(self, applier: Applier, key: TableKey, new: TableKey) -> None:
        plan = self.plans.pop(key, None)
        if plan is None:
            return
        target = self._renamed_target(plan, new)
        self.target.rename_table(plan.target, target)
        applier.schema_changed(ApplyPlan(plan.source, target, plan.names))
        moved = ApplyPlan(replace(plan.source, schema=new[0], name=new[1]), target, plan.names)
        applier.schema_changed(moved)
        self.plans[new] = moved
        self._captured(new, keep=True)
        log.info(
            "table %s.%s renamed on the source to %s.%s: target %s renamed to %s",
            *key,
            *new,
            plan.target.qualified,
            target.qualified,
        )

    def _captured(self, key: TableKey, keep: bool) -> None:
        """Statistics for a table captured from now on (nothing to load: completed)."""
        self.store.table_planned(self.spec.name, key[0], key[1], 0, keep=keep)
        self.store.table_ended(self.spec.name, key[0], key[1], TableState.COMPLETED)

    def _renamed_target(self, plan: ApplyPlan, new: TableKey) -> Table:
        """The target table under the name the mapping rules give the new source name
        (its columns stay those of the target table)."""
        source = self.follower.tables.get(new) or replace(plan.source, schema=new[0], name=new[1])
        try:
            named = self.loader.planner.plan_one(source).target
        except ConfigError as exc:
            log.warning("table %s: %s; the target table keeps its schema", source.qualified, exc)
            named = replace(plan.target, name=new[1])
        return replace(plan.target, schema=named.schema, name=named.name)
