"""``full-load-and-cdc`` and ``cdc`` tasks (PostgreSQL source -> PostgreSQL target).

Order of work, so the hand-off has no gap and no duplicate:

1. publication over the selected tables;
2. if the target holds a checkpoint for this task and the slot still exists,
   resume streaming at the checkpoint (no new full load);
3. otherwise create the slot with an exported snapshot, full-load every table
   under that snapshot, record the slot's consistent point as the checkpoint;
4. stream from the checkpoint, applying whole transactions in batches.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from opendms.cdc import LSN, Transaction
from opendms.config import MigrationType, TaskSpec
from opendms.endpoints.base import Source, Target
from opendms.engine.cdc import PHASE_FULL_LOAD, BatchSettings, CdcLoop
from opendms.engine.fullload import FullLoad, LoadResult
from opendms.errors import ConfigError, TaskError
from opendms.mapping import TableMappings, TablePlan
from opendms.model import TableRef
from opendms.state import StateStore

log = logging.getLogger("opendms.replicate")


@dataclass(frozen=True)
class CdcResult:
    load: LoadResult | None
    position: str


def check_cdc_pair(spec: TaskSpec, source: Source, target: Target) -> None:
    pg = ("postgresql", "postgres")
    if source.url.scheme not in pg or target.url.scheme not in pg:
        raise ConfigError(
            f"migration type {spec.migration_type.value!r} is supported from PostgreSQL to "
            f"PostgreSQL in this version, not {source.url.scheme} -> {target.url.scheme}",
            where=f"task {spec.name}",
            path="$.migration_type",
        )


def _maps(plans: list[TablePlan], same_engine: bool) -> dict[tuple[str, str], Any]:
    from opendms.endpoints.postgres.apply import table_map

    maps = {}
    for plan in plans:
        if any(o.expression is not None for o in plan.outputs):
            raise ConfigError(
                f"table {plan.source.qualified}: add-column expressions are not applied to "
                "changes yet; remove the rule or use migration type full-load",
                path="$.table_mappings",
            )
        names = {o.source: o.name for o in plan.outputs if o.source is not None}
        maps[(plan.source.schema, plan.source.name)] = table_map(plan.target, names, same_engine)
    return maps


class Replication:
    """Runs one CDC task against an open source and target."""

    def __init__(
        self,
        spec: TaskSpec,
        source: Source,
        target: Target,
        mappings: TableMappings,
        store: StateStore,
        progress: Any = None,
    ) -> None:
        from opendms.endpoints.postgres.replication import PgReplication

        self.spec, self.source, self.target, self.store = spec, source, target, store
        self.loader = FullLoad(spec, source, target, mappings, store, progress)
        self.fresh = False
        self.repl = PgReplication(source.url, spec.name)

    def run(self, stop: threading.Event, follow: bool) -> CdcResult:
        from opendms.endpoints.postgres.apply import read_checkpoint
        from opendms.endpoints.postgres.conn import connect

        plans = self.loader.plan()
        self._warn_unkeyed(plans)
        self.repl.ensure_publication([TableRef(p.source.schema, p.source.name) for p in plans])
        conn = connect(self.target.url, autocommit=True)
        try:
            saved = read_checkpoint(conn, self.spec.name)
            load, start = self._start(plans, saved, conn)
            maps = _maps(plans, same_engine=True)
            end = self._stream(conn, maps, start, stop, follow)
        finally:
            conn.close()
        return CdcResult(load, str(end))

    def _start(
        self, plans: list[TablePlan], saved: str | None, conn: Any
    ) -> tuple[LoadResult | None, LSN]:
        from opendms.endpoints.postgres.apply import write_checkpoint

        slot = self.repl.slot_position()
        if saved is not None and slot is None and not self.fresh:
            raise TaskError(
                f"task {self.spec.name}: replication slot {self.repl.slot!r} is gone, so the "
                f"changes after the last applied position {saved} cannot be read; run the task "
                "with --fresh to start over with a new full load"
            )
        if self.fresh:
            saved = None
        if saved is not None and slot is not None:
            log.info("resuming task %s at %s", self.spec.name, saved)
            for plan in plans:
                self.store.table_planned(
                    self.spec.name, plan.source.schema, plan.source.name, 0, keep=True
                )
            return None, LSN.parse(saved)
        if slot is not None:
            self.repl.drop()
            self.repl.ensure_publication([TableRef(p.source.schema, p.source.name) for p in plans])
        consistent, snapshot = self.repl.create_slot()
        try:
            load = self._full_load(plans, snapshot)
        finally:
            self.repl.release_snapshot()
        write_checkpoint(conn, self.spec.name, str(consistent))
        return load, consistent

    def _full_load(self, plans: list[TablePlan], snapshot: str) -> LoadResult | None:
        if self.spec.migration_type is not MigrationType.FULL_LOAD_AND_CDC:
            for plan in plans:
                self.store.table_planned(self.spec.name, plan.source.schema, plan.source.name, 0)
            return None
        self.store.set_phase(self.spec.name, PHASE_FULL_LOAD)
        result = self.loader.run(plans, snapshot)
        if result.failed:
            names = ", ".join(sorted(result.failed))
            raise TaskError(f"full load failed for {names}; changes are not applied")
        return result

    def _stream(
        self,
        conn: Any,
        maps: dict[tuple[str, str], Any],
        start: LSN,
        stop: threading.Event,
        follow: bool,
    ) -> LSN:
        from opendms.endpoints.postgres.apply import apply_batch

        def apply(batch: list[Transaction], position: str) -> int:
            return apply_batch(conn, maps, batch, (self.spec.name, position))

        tuning = self.spec.task_settings.ChangeProcessingTuning
        batch = BatchSettings(
            float(tuning.BatchApplyTimeoutMin),
            float(tuning.BatchApplyTimeoutMax),
            tuning.BatchSplitSize or 10_000,
        )
        loop = CdcLoop(self.spec.name, apply, self.repl.confirm, self.store, batch)
        stream = self.repl.stream(start, stop)
        return loop.run(stream, start, stop, self.repl.caught_up, follow)

    def _warn_unkeyed(self, plans: list[TablePlan]) -> None:
        for plan in plans:
            if not plan.source.primary_key:
                log.warning(
                    "table %s has no primary key: updates and deletes cannot be keyed "
                    "unless it has REPLICA IDENTITY FULL",
                    plan.source.qualified,
                )
