"""``full-load-and-cdc`` and ``cdc`` tasks: any change source into any applier.

Order of work, so the hand-off has no gap and no duplicate:

1. capture objects for the selected tables (publication, triggers) and prerequisites;
2. if the target holds a checkpoint for this task, resume streaming there (no new
   full load; a position the source no longer has fails the task);
3. otherwise take a start position (PostgreSQL: a new slot with an exported
   snapshot), full-load every table (under that snapshot when there is one),
   record the start position as the checkpoint;
4. stream from the checkpoint, applying whole transactions in batches.

Sources without a shared snapshot (MySQL, SQLite) race with writes during the
full load, so the changes from the start position to the source's end of log
after the load ("until") are applied idempotently: a row the load already saw
is upserted, not inserted twice. The checkpoint keeps ``until`` while it
applies, so a restart in that phase stays idempotent.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from opendms.changes import Applier, ApplyPlan, Change, Op, Position, Transaction
from opendms.config import MigrationType, TaskSpec
from opendms.endpoints import (
    ApplyOptions,
    engine_for,
    open_applier,
    open_change_source,
    same_database,
    same_engine,
)
from opendms.endpoints.apply.policy import op_name
from opendms.endpoints.base import Source, Target
from opendms.endpoints.engine import (
    ApplyPathReporting,
    HeartbeatCapture,
    LagReporting,
    NamedCapture,
    NewTableCapture,
    RewindableCapture,
    TextValueCapture,
)
from opendms.engine.cdcloop import PHASE_FULL_LOAD, BatchSettings, CdcLoop
from opendms.engine.checkpoint import Checkpoint, stop_predicate
from opendms.engine.ddl import evolve, plans_from_json, plans_to_json
from opendms.engine.follow import SchemaFollower
from opendms.engine.fullload import FullLoad, LoadResult, map_objects, tag_objects
from opendms.engine.handoff import ChangeHandoff, HandOff
from opendms.engine.isolate import Isolating
from opendms.engine.lobcut import LobCutter
from opendms.engine.policies import ErrorPolicies
from opendms.engine.tableddl import TableDdl, apply_plan, new_table_rules, plan_created
from opendms.engine.transform import Transformer, needs_transform, output_plan
from opendms.engine.validation import ChangedRowsCheck, Validation
from opendms.errors import ConfigError, DataError, TaskError
from opendms.mapping import TableMappings, TablePlan
from opendms.mapping.lobs import LobPolicy
from opendms.model import Table, TableRef
from opendms.state import StateStore

log = logging.getLogger("opendms.replicate")
TableKey = tuple[str, str]


@dataclass(frozen=True)
class CdcResult:
    load: LoadResult | None
    position: str
    stop_reason: str = ""  # a DMS stop reason when the task stopped by its settings


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
        validation: Validation | None = None,
    ) -> None:
        self.spec, self.source, self.target, self.store = spec, source, target, store
        self.loader = FullLoad(spec, source, target, mappings, store, progress)
        self.fresh = False
        self.capture = open_change_source(source.url, spec.name, spec.source.settings)
        self.same = same_engine(source.url.scheme, target.url.scheme)
        self.plans: dict[TableKey, ApplyPlan] = {}
        self.sources: dict[TableKey, Table] = {}
        self.transformed: dict[TableKey, TablePlan] = {}
        self.table_plans: list[TablePlan] = []
        self.policies = ErrorPolicies(spec.name, spec.task_settings.ErrorBehavior, store)
        self.follower = SchemaFollower({}, self.transformed, self._plan_new, None)
        self.validation = validation  # EnableValidation's, from opendms.validate
        self.handoff: ChangeHandoff | None = None  # handler functions, from the service
        self.hand_off: HandOff = _nobody

    def _check_positions(self) -> None:
        """Bad start or stop positions fail before anything is created."""
        if self.spec.cdc_stop_position:
            stop_predicate(self.spec.cdc_stop_position, self.capture)
        start_at = self.spec.cdc_start_position
        if start_at not in (None, "now"):
            assert start_at is not None
            self.capture.parse_position(start_at)

    def run(self, stop: threading.Event, follow: bool) -> CdcResult:
        try:
            self._check_positions()
            plans = self.table_plans = self.loader.plan()
            tag_objects(self.target, self.loader.mappings, plans)
            map_objects(self.target, self.loader.mappings, plans)
            self._warn_unkeyed(plans)
            if isinstance(self.capture, NewTableCapture):
                rules = new_table_rules(self.loader.mappings, plans, self._same_database())
                self.capture.select_new_tables(rules)
            # Views are loaded (full load) but have no changes to capture, as with DMS.
            tables = [p for p in plans if not p.source.view]
            self.capture.prepare([TableRef(p.source.schema, p.source.name) for p in tables])
            self.sources = {(p.source.schema, p.source.name): p.source for p in plans}
            self.policies.keys = {k: t.primary_key for k, t in self.sources.items()}
            self.transformed.update(
                {(p.source.schema, p.source.name): p for p in plans if needs_transform(p)}
            )
            self.plans = {
                (p.source.schema, p.source.name): (
                    output_plan(p) if needs_transform(p) else apply_plan(p)
                )
                for p in plans
            }
            self.capture.old_rows = self._old_rows()
            applier = open_applier(
                self.target, self.spec.name, list(self.plans.values()), self._apply_options()
            )
            try:
                saved = applier.read_checkpoint()  # also sets up the checkpoint table
                saved = None if self.fresh else saved
                if saved is not None:
                    self._schema_at(saved, applier)
                load, point = self._start(plans, saved, applier)
                self.store.set_position(self.spec.name, str(point.position))
                if saved is None:
                    self._save_schema(point.text(), fresh=True)
                full = self.spec.task_settings.FullLoadSettings
                if load is not None and full.StopTaskCachedChangesNotApplied:
                    log.info("task %s: stopped after the full load", self.spec.name)
                    return CdcResult(load, str(point.position), "STOPPED_AFTER_FULL_LOAD")
                when_live = load is not None and full.StopTaskCachedChangesApplied
                with self._handing_off(stop):
                    end, reason = self._stream(applier, point, stop, follow, when_live)
            finally:
                applier.close()
        finally:
            self.capture.close()
        return CdcResult(load, str(end), reason)

    @contextmanager
    def _handing_off(self, stop: threading.Event) -> Iterator[None]:
        """While changes stream, each batch goes to the handoff before it is applied."""
        if self.handoff is None:
            yield
            return
        with self.handoff.streaming(stop, self._key_of) as self.hand_off:
            try:
                yield
            finally:
                self.hand_off = _nobody

    def _key_of(self, schema: str, table: str) -> tuple[str, ...]:
        """The key columns of a table's changes (as the applier gets them)."""
        plan = self.plans.get((schema, table))
        return plan.source.primary_key if plan is not None else ()

    def _records_changes(self) -> bool:
        """The target records every change (lake files) rather than holding rows."""
        return engine_for(self.target.url).capabilities.records_changes

    def _old_rows(self) -> set[TableKey]:
        """Tables whose changes must carry the old row: all for the lake (its ``D`` rows),
        those with source filters otherwise (an update may move a row in or out)."""
        if self._records_changes():
            return set(self.plans)
        return {key for key, plan in self.transformed.items() if plan.filters}

    def _apply_options(self) -> ApplyOptions:
        behavior = self.spec.task_settings.ErrorBehavior
        conflicts: Counter[str] = Counter()

        def on_error(table: str, op: Op, key: str, reason: str) -> None:
            name = op_name(op)
            log.warning("table %s: %s of row %s skipped: %s", table, name, key, reason)
            self.store.data_error(self.spec.name, table, key, "", f"apply {name}: {reason}")
            if reason.endswith("(SUSPEND_TABLE)"):
                self.policies.apply_conflict_suspended(table, f"apply {name}: {reason}")
            conflicts[table] += 1
            limit = behavior.ApplyErrorEscalationCount
            if limit and conflicts[table] == limit:
                self._escalate_conflicts(table, f"ApplyErrorEscalationCount {limit} reached")

        meta = self.spec.task_settings.TargetMetadata
        threads, buffer = max(meta.ParallelApplyThreads, 1), max(meta.ParallelApplyBufferSize, 1)
        policies = behavior.apply_policies()
        return ApplyOptions(self._form(), self.same, policies, on_error, threads, buffer)

    def _escalate_conflicts(self, table: str, reason: str) -> None:
        """ApplyErrorEscalationPolicy once a table has had ApplyErrorEscalationCount apply
        conflicts: LOG_ERROR goes on, SUSPEND_TABLE suspends it, STOP_TASK stops."""
        policy = self.spec.task_settings.ErrorBehavior.ApplyErrorEscalationPolicy
        log.warning("table %s: %s (ApplyErrorEscalationPolicy %s)", table, reason, policy)
        if policy == "SUSPEND_TABLE":
            self.policies.apply_conflict_suspended(table, reason)
        elif policy == "STOP_TASK":
            raise TaskError(f"table {table}: {reason} (ApplyErrorEscalationPolicy STOP_TASK)")

    def _form(self) -> str:
        """Value form the applier gets: PostgreSQL text only PostgreSQL -> PostgreSQL
        with no table whose rows the mapping rules transform and no LOB limit to apply,
        the task's or a table's (limited LOB mode cuts Python values)."""
        text = self.capture.value_form == "pg-text" and self.same and not self.transformed
        text = text and not self._lob_limits()
        return "pg-text" if text else "python"

    def _lob_policies(self) -> tuple[LobPolicy, ...]:
        """Every LOB policy a table of the task may have (a table created during CDC
        too): the task's and those of the table-settings rules' ``lob-settings``."""
        return self.loader.mappings.lob_policies(self.loader.lobs)

    def _lob_limits(self) -> bool:
        """Whether some table may have a LOB limit (its changes' values are measured)."""
        return any(p.max_bytes is not None for p in self._lob_policies())

    def _lob_policy(self, key: TableKey) -> LobPolicy:
        """The LOB settings of the source table ``key``."""
        return self.loader.mappings.lob_policy(TableRef(*key), self.loader.lobs)

    def _start(
        self, plans: list[TablePlan], saved: str | None, applier: Applier
    ) -> tuple[LoadResult | None, Checkpoint]:
        if saved is not None:
            return None, self._resume(plans, saved)
        start_at = self.spec.cdc_start_position
        if self.spec.migration_type is MigrationType.CDC and start_at not in (None, "now"):
            assert start_at is not None
            point = Checkpoint(self.capture.parse_position(start_at))
            earliest, _ = self.capture.start()
            self.capture.release_snapshot()
            rewinds = not isinstance(self.capture, RewindableCapture) or self.capture.can_rewind
            if not rewinds and point.position < earliest:
                raise ConfigError(
                    f"CdcStartPosition {start_at} is before the new replication slot's start "
                    f"({earliest}): the changes in between cannot be read; use a later "
                    "position or 'now'",
                    where=f"task {self.spec.name}",
                    path="$.CdcStartPosition",
                )
            self._planned(plans, keep=False)
            applier.write_checkpoint(point.text())
            return None, point
        start, snapshot = self.capture.start()
        try:
            load = self._full_load(plans, snapshot)
        finally:
            self.capture.release_snapshot()
        until = None
        if load is not None and not self.capture.consistent_snapshot:
            until = self.capture.current_position()
        point = Checkpoint(start, until)
        applier.write_checkpoint(point.text())
        return load, point

    def _resume(self, plans: list[TablePlan], saved: str) -> Checkpoint:
        if not self.capture.exists():
            what = (
                self.capture.label
                if isinstance(self.capture, NamedCapture)
                else "the change capture on the source"
            )
            raise TaskError(
                f"task {self.spec.name}: {what} is gone, so the "
                f"changes after the last applied position {saved} cannot be read; run the "
                "task with --fresh to start over with a new full load"
            )
        log.info("resuming task %s at %s", self.spec.name, saved)
        self._planned(plans, keep=True)
        self.policies.resume()
        return Checkpoint.parse(saved, self.capture)

    def _planned(self, plans: list[TablePlan], keep: bool) -> None:
        for plan in plans:
            self.store.table_planned(
                self.spec.name, plan.source.schema, plan.source.name, 0, keep=keep
            )

    def _full_load(self, plans: list[TablePlan], snapshot: str | None) -> LoadResult | None:
        if self.spec.migration_type is not MigrationType.FULL_LOAD_AND_CDC:
            self._planned(plans, keep=False)
            return None
        self.store.set_phase(self.spec.name, PHASE_FULL_LOAD)
        result = self.loader.run(plans, snapshot)
        if result.failed:
            names = ", ".join(sorted(result.failed))
            raise TaskError(f"full load failed for {names}; changes are not applied")
        return result

    def _stream(
        self,
        applier: Applier,
        point: Checkpoint,
        stop: threading.Event,
        follow: bool,
        stop_when_live: bool = False,
    ) -> tuple[Position, str]:
        """Apply changes from ``point``; the position reached and the stop reason."""
        validator = self._validator()
        isolating = _isolating(applier, self.policies, point)

        def apply(batch: list[Transaction], _position: str) -> int:
            assert loop.applied is not None
            self.hand_off(batch)
            applied = isolating.apply(batch, loop.applied)
            if validator is not None:
                validator.note(batch)
            return applied

        loop = CdcLoop(self.spec.name, apply, self.capture.confirm, self.store)
        self._configure(loop, applier, validator)
        loop.stop_when_live = stop_when_live
        source = self.capture.stream(point.position, stop)
        stream = self._values(source)
        try:
            end = loop.run(stream, point.position, stop, self.capture.caught_up, follow)
            if validator is not None:  # what the last batches changed; a second pass
                validator.check(force=True)  # confirms what differed in the first
                validator.check(force=True)
        finally:
            stream.close()  # ends the source's stream now (its connection, slot), even
            source.close()  # when an error left the generators suspended
            if validator is not None:
                validator.close()
        if loop.stop_reached:
            return end, "STOP_POSITION_REACHED"
        return end, "STOPPED_AFTER_CACHED_EVENTS" if loop.stopped_live else ""

    def _configure(
        self, loop: CdcLoop, applier: Applier, validator: ChangedRowsCheck | None
    ) -> None:
        """The loop's batching, stop position, DDL steps, idle work and reporting."""
        loop.settings = self._batch_settings(applier)
        if self.spec.task_settings.ErrorBehavior.ApplyErrorFailOnTruncationDdl:
            loop.refuse = _refuse_truncate
        pending = applier.must_flush_at()
        if pending is not None:
            loop.flush_at = Checkpoint.parse(pending, self.capture).position
        if self.spec.cdc_stop_position:
            loop.stop_at = stop_predicate(self.spec.cdc_stop_position, self.capture)
        loop.before_ddl = lambda txn: self._evolve(applier, txn)
        loop.on_ddl = lambda txn: self._ddl(applier, txn)
        loop.heartbeat = self._idle(validator)
        if isinstance(self.capture, LagReporting):
            loop.lag_bytes = self.capture.lag_bytes
        if isinstance(applier, ApplyPathReporting):
            loop.apply_paths = applier.apply_paths

    def _validator(self) -> ChangedRowsCheck | None:
        """EnableValidation on a database target: validate the rows changes touch."""
        if not self.spec.task_settings.ValidationSettings.EnableValidation:
            return None
        if self._records_changes():
            return None
        if self.validation is None:
            raise TaskError(f"task {self.spec.name}: EnableValidation, but no validation given")
        plans = [
            p for p in self.table_plans if (p.source.schema, p.source.name) not in self.transformed
        ]
        return self.validation.changed_rows(self.spec, self.store, plans)

    def _idle(self, validator: ChangedRowsCheck | None) -> Callable[[], None] | None:
        """Idle with nothing pending: heartbeat the source, validate changed rows."""
        beat = self.capture.heartbeat if isinstance(self.capture, HeartbeatCapture) else None
        if validator is None:
            return beat

        def idle() -> None:
            if beat is not None:
                beat()
            validator.check()

        return idle

    def _batch_settings(self, applier: Applier) -> BatchSettings:
        hint = applier.batch_hint()
        if hint is not None:
            seconds, size = hint
            return BatchSettings(seconds, seconds, 10**9, size, flush_when_idle=False)
        tuning = self.spec.task_settings.ChangeProcessingTuning
        return BatchSettings(
            float(tuning.BatchApplyTimeoutMin),
            float(tuning.BatchApplyTimeoutMax),
            tuning.BatchSplitSize or 10_000,
        )

    def _evolve(self, applier: Applier, txn: Transaction) -> None:
        """Before a DDL transaction is applied: the plans after it, saved as of its end
        (a restart before it was applied still finds the older version); tables created,
        dropped or renamed on the source are so on the target."""
        tables = TableDdl(
            self.spec, self.target, self.loader, self.store, self.plans, self.follower, self.same
        )
        for change in txn.changes:
            key = (change.schema, change.table)
            if change.op is not Op.DDL:
                continue
            if change.table_ddl is not None:
                action = change.table_ddl.action
                if action == "create":
                    tables.create(applier, key)
                elif action == "drop":
                    tables.drop(applier, key)
                elif action == "rename":
                    tables.rename(applier, key, _new_key(change))
            elif key in self.transformed:
                log.warning(
                    "table %s.%s has transformation rules: its new or renamed columns are "
                    "not carried to the target by CDC",
                    *key,
                )
            elif key in self.plans:
                self.plans[key] = evolve(self.plans[key], change.ddl)
        self._save_schema(str(txn.end))

    def _ddl(self, applier: Applier, txn: Transaction) -> None:
        """After a DDL transaction was applied: the applier follows the source."""
        for change in txn.changes:
            key = (change.schema, change.table)
            if change.op is not Op.DDL:
                continue
            if change.table_ddl is not None and change.table_ddl.action == "rename":
                applier.table_dropped(*key)
            elif change.table_ddl is None and key in self.plans and key not in self.transformed:
                applier.schema_changed(self.plans[key])

    def _save_schema(self, position: str, fresh: bool = False) -> None:
        plans = [p for k, p in self.plans.items() if k not in self.transformed]
        self.store.save_schema(self.spec.name, position, plans_to_json(plans), fresh)

    def _schema_at(self, saved: str, applier: Applier) -> None:
        """Resuming: the tables' columns as they were at the saved position (the source
        may have changed since; those DDL events are still ahead in the stream)."""
        at = Checkpoint.parse(saved, self.capture).position
        chosen = None
        for position, plans in self.store.schemas(self.spec.name):
            if self.capture.parse_position(position.partition(" until ")[0]) <= at:
                chosen = plans
        if chosen is None:
            log.warning(
                "task %s: no schema history; using the current source tables", self.spec.name
            )
            return
        for plan in plans_from_json(chosen):
            key = (plan.source.schema, plan.source.name)
            if key not in self.transformed and plan != self.plans.get(key):
                self.plans[key] = plan  # also a table since dropped or renamed
                applier.schema_changed(plan)

    def _values(self, stream: Iterable[Transaction | None]) -> Generator[Transaction | None]:
        """The source's schema followed change by change (PostgreSQL text values to Python
        form when the target is another engine or mapping rules transform rows); then the
        rules. A change that cannot be converted or transformed (or that the source could
        not decode) keeps its place with ``error`` set: the error policies decide about it
        in order with the writes."""
        tables = {
            k: self.sources[k] if k in self.transformed else p.source for k, p in self.plans.items()
        }
        converter = None
        if isinstance(self.capture, TextValueCapture) and self._form() == "python":
            converter = self.capture.text_converter
        convert = converter is not None
        self.follower = SchemaFollower(tables, self.transformed, self._plan_new, converter)
        steps: list[Callable[[Change], list[Change]]] = [self.follower.one]
        if any(p.acts for p in self._lob_policies()):
            follower = self.follower
            cutter = LobCutter(
                self._lob_policy, lambda: follower.tables, self.transformed, self.policies.truncated
            )
            steps.append(cutter.one)
        transformer = Transformer(
            self.transformed, self._records_changes(), self.policies.truncated
        )
        steps.append(transformer.one)
        policy = self.spec.task_settings.ChangeProcessingDdlHandlingPolicy
        fail_truncate = self.spec.task_settings.ErrorBehavior.ApplyErrorFailOnTruncationDdl
        keep_truncates = policy.HandleSourceTableTruncated or fail_truncate
        every = convert or self._lob_limits()
        for txn in stream:
            if txn is not None and (every or self.transformed or _special(txn, keep_truncates)):
                transformer.begin(txn)  # the header columns of its changes
                txn = replace(txn, changes=self._screened(txn.changes, steps))
            yield txn

    def _screened(
        self, changes: list[Change], steps: list[Callable[[Change], list[Change]]]
    ) -> list[Change]:
        """The changes converted and transformed; one that cannot be stays in place with
        its ``error`` set, so the error policy decides about it in order with the writes
        (see isolate.py)."""
        out: list[Change] = []
        truncate = self.spec.task_settings.ChangeProcessingDdlHandlingPolicy
        keep = truncate.HandleSourceTableTruncated
        keep = keep or self.spec.task_settings.ErrorBehavior.ApplyErrorFailOnTruncationDdl
        for change in changes:
            if change.op is Op.TRUNCATE and not keep:
                log.info(
                    "table %s.%s: TRUNCATE not applied (HandleSourceTableTruncated false)",
                    change.schema,
                    change.table,
                )
                continue
            if change.error:
                out.append(change)
                continue
            done = [change]
            try:
                for step in steps:
                    done = [c for one in done for c in step(one)]
            except DataError as exc:
                out.append(replace(change, error=_error_text(exc)))
                continue
            out += done
        return out

    def _plan_new(self, table: Table) -> TablePlan | None:
        """The plan of a table created on the source, or None when the task does not
        take it (see :func:`plan_created`)."""
        own = [p.target for p in self.plans.values()] if self._same_database() else None
        return plan_created(self.loader, table, own)

    def _same_database(self) -> bool:
        return same_database(self.source.url, self.target.url)

    def _warn_unkeyed(self, plans: list[TablePlan]) -> None:
        for plan in plans:
            if not plan.source.primary_key:
                log.warning(
                    "table %s has no primary key: updates and deletes cannot be keyed "
                    "unless it has REPLICA IDENTITY FULL (PostgreSQL) or a full row image",
                    plan.source.qualified,
                )


def _isolating(applier: Applier, policies: ErrorPolicies, point: Checkpoint) -> Isolating:
    """The applier behind error isolation, with the checkpoints it writes: a whole batch
    moves the position (idempotent while replaying up to ``point.until``); a batch split
    to isolate a failing change keeps ``until`` so a crash replays its rest idempotently."""

    def full(batch: list[Transaction]) -> tuple[str, bool]:
        end, until = batch[-1].end, point.until
        idempotent = until is not None and batch[0].end <= until
        kept = until if until is not None and end < until else None
        return Checkpoint(end, kept).text(), idempotent

    def partial(prior: Position, end: Position) -> str:
        until = end if point.until is None else max(end, point.until)
        return Checkpoint(prior, until).text()

    return Isolating(applier, policies, full, partial)


def _nobody(batch: Sequence[Transaction]) -> None:
    """No handoff: a batch goes to the target only."""


def _refuse_truncate(txn: Transaction) -> str:
    """ErrorBehavior.ApplyErrorFailOnTruncationDdl: why a TRUNCATE fails the task."""
    for change in txn.changes:
        if change.op is Op.TRUNCATE:
            return (
                f"table {change.schema}.{change.table} was truncated on the source "
                "(ErrorBehavior.ApplyErrorFailOnTruncationDdl is true)"
            )
    return ""


def _special(txn: Transaction, keep_truncates: bool = True) -> bool:
    """A transaction with DDL (the follower must see it), changes the source could not
    decode, or a TRUNCATE that is not to be applied; others pass through as they are when
    no value needs converting."""
    return any(
        c.op is Op.DDL or c.error or (c.op is Op.TRUNCATE and not keep_truncates)
        for c in txn.changes
    )


def _error_text(exc: DataError) -> str:
    """``column X: why`` (what :meth:`Change.error_column` reads) for a DataError."""
    text = exc.message.removeprefix(f"table {exc.table}: ")
    if exc.column and not text.startswith(f"column {exc.column}: "):
        text = f"column {exc.column}: {text}"
    return text


def _new_key(change: Change) -> TableKey:
    assert change.table_ddl is not None
    return change.table_ddl.new_schema, change.table_ddl.new_name
