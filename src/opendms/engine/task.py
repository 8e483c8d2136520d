"""Run a task end to end: record it, open endpoints, full load, final status."""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
from dataclasses import dataclass

from opendms.config import MigrationType, TaskSpec
from opendms.endpoints import engine_for, open_source, open_target
from opendms.endpoints.base import EndpointURL, Source, Target, mask
from opendms.engine.checkpoint import check_cdc_pair
from opendms.engine.fullload import FullLoad, LoadResult
from opendms.engine.handoff import ChangeHandoff
from opendms.engine.plan import task_mappings
from opendms.engine.progress import Progress
from opendms.engine.recover import Retries, retrying
from opendms.engine.replicate import Replication
from opendms.engine.validation import Validation
from opendms.errors import OpenDMSError, StopRequested, TaskError
from opendms.mapping import TableMappings
from opendms.state import StateStore, TaskStatus, TaskStore
from opendms.state.lock import TaskLock
from opendms.state.status import (
    STOPPED_BY_USER,
    IllegalTransitionError,
    end_lost_run,
    transition,
)
from opendms.tasksettings import settings_without_effect

log = logging.getLogger("opendms.task")


def register(spec: TaskSpec, store: TaskStore) -> None:
    """Record (or redefine) the task in the state store (URLs masked, secret settings
    such as passwords, secrets and tokens replaced by ``***``): a new task is created
    (``creating``) and then ``ready``; a redefined one keeps its status."""
    body = spec.model_dump(mode="json")
    for end in ("source", "target"):
        body[end]["url"] = mask(body[end]["url"])
        body[end]["settings"] = {
            k: "***" if any(w in k.lower() for w in ("password", "secret", "token")) else v
            for k, v in body[end]["settings"].items()
        }
    store.save_task(
        spec.name,
        mask(spec.source.url),
        mask(spec.target.url),
        spec.migration_type.value,
        json.dumps(body),
    )
    record = store.task(spec.name)
    if record is not None and record.status is TaskStatus.CREATING:  # also a creation cut short
        transition(store, spec.name, TaskStatus.READY)


@dataclass(frozen=True)
class RunOptions:
    """How one run goes. ``progress``: told of rows as they move; ``stop``: set to stop
    the run; ``follow``: CDC keeps applying until stopped (else it ends once caught up);
    ``fresh``: the saved position is ignored and the task starts over with a new slot
    (and full load); ``file``: the task file, kept on record for start/resume/reload;
    ``handoff``: told of every CDC batch before it is applied (handler functions)."""

    progress: Progress | None = None
    stop: threading.Event | None = None
    follow: bool = False
    fresh: bool = False
    file: str = ""
    handoff: ChangeHandoff | None = None


def run_task(
    spec: TaskSpec, store: StateStore, options: RunOptions, validation: Validation
) -> LoadResult:
    """Run a task in the foreground.

    A ``full-load`` task ends when every table is loaded (TaskError if any
    failed). A CDC task applies changes until ``options.stop`` is set or, without
    ``follow``, until it has caught up with the source. ``validation`` is the
    row-level validation the task's ValidationSettings call for (the task service
    hands it over: see :mod:`opendms.engine.validation`).
    """
    mappings = task_mappings(spec)
    warn_settings_without_effect(spec)
    _tune_gc()
    with TaskLock(store.path, spec.name):  # refused before anything is recorded
        return _locked_run(spec, mappings, store, options, validation)


def warn_settings_without_effect(spec: TaskSpec) -> None:
    """One warning per DMS task setting the task sets but opendms does not act on
    (README, "Task settings with no effect here"), once per process; the ParallelApply
    settings act on a target whose engine applies in parallel (DynamoDB)."""
    parallel = _applies_in_parallel(spec)
    for path, reason in settings_without_effect(spec.task_settings):
        if parallel and path.startswith(_PARALLEL_APPLY):
            continue
        if path not in _warned_settings:
            _warned_settings.add(path)
            log.warning("task setting %s has no effect in opendms: %s", path, reason)


_warned_settings: set[str] = set()
_PARALLEL_APPLY = ("TargetMetadata.ParallelApplyThreads", "TargetMetadata.ParallelApplyBufferSize")


def _applies_in_parallel(spec: TaskSpec) -> bool:
    try:
        return engine_for(EndpointURL.parse(spec.target.url)).capabilities.parallel_apply
    except OpenDMSError:  # an unknown scheme fails the run with its own message
        return False


def _tune_gc() -> None:
    """Loads and change streams allocate millions of short-lived tuples and dicts (one
    per row or change), none of them in reference cycles: collecting the youngest
    generation every 50,000 allocations instead of every 700 cuts the collector's share of
    CDC decoding by about a third. Only the default threshold is changed."""
    if gc.get_threshold()[0] == 700:
        gc.set_threshold(50_000, 20, 100)


def _locked_run(
    spec: TaskSpec,
    mappings: TableMappings,
    store: StateStore,
    options: RunOptions,
    validation: Validation,
) -> LoadResult:
    progress, follow, fresh, file = options.progress, options.follow, options.fresh, options.file
    register(spec, store)
    _ready_to_run(store, spec.name)
    if spec.task_settings.ValidationSettings.ValidationOnly:
        return _validation_only(spec, store, validation)
    if file:
        store.set_file(spec.name, file)
    cdc = spec.migration_type is not MigrationType.FULL_LOAD
    if not cdc:
        store.reset_tables(spec.name)
    transition(store, spec.name, TaskStatus.STARTING)
    stop = options.stop or threading.Event()
    store.set_pid(spec.name, os.getpid())
    try:
        hooks = (validation, options.handoff)
        result = _run(spec, mappings, store, progress, (stop, follow, fresh), hooks)
    except KeyboardInterrupt as exc:
        _record_end(store, spec.name, TaskStatus.STOPPED, STOPPED_BY_USER, exc)
        raise
    except StopRequested as exc:  # asked to stop while waiting to retry
        _record_end(store, spec.name, TaskStatus.STOPPED, STOPPED_BY_USER, exc)
        raise
    except OpenDMSError as exc:
        _record_end(store, spec.name, TaskStatus.FAILED, str(exc), exc)
        raise
    except Exception as exc:
        _record_end(store, spec.name, TaskStatus.FAILED, f"internal error: {exc!r}", exc)
        raise
    finally:
        store.set_pid(spec.name, None)
    load, stop_reason = result
    _finish(spec, store, load, cdc, stop, stop_reason)
    if spec.task_settings.ValidationSettings.EnableValidation and load.tables:
        _validate(spec, store, validation)  # after a full load; CDC validates the rows it changes
    return load


def _ready_to_run(store: TaskStore, name: str) -> None:
    """A run the store still shows as active, although this process now holds the task's
    run lock, has gone without recording its end (killed): failed, before a new run. A
    task being deleted does not run."""
    record = store.task(name)
    if record is None:
        return
    if record.status is TaskStatus.DELETING:
        raise TaskError(f"task {name!r} is being deleted; finish with `opendms task delete {name}`")
    end_lost_run(store, record)


def _record_end(
    store: TaskStore, name: str, status: TaskStatus, reason: str, cause: BaseException
) -> None:
    """Record how a run that is raising ``cause`` ended. A refused status change (a bug,
    logged by :func:`transition`) never hides the real failure: ``cause`` goes on, with
    the refusal as a note."""
    try:
        transition(store, name, status, reason)
    except IllegalTransitionError as refused:
        cause.add_note(str(refused))


def _validate(spec: TaskSpec, store: StateStore, validation: Validation) -> bool:
    """Row-level validation after the load (or once caught up); results in the store."""
    result = validation.validate_task(spec, store)
    if not result.ok:
        log.warning(
            "task %s: validation found %d failure(s), %d table(s) not validated; "
            "see opendms validate or the state store",
            spec.name,
            len(result.failures),
            len(result.not_validated),
        )
    return result.ok


def _validation_only(spec: TaskSpec, store: StateStore, validation: Validation) -> LoadResult:
    """ValidationOnly: compare source and target without loading anything."""
    transition(store, spec.name, TaskStatus.RUNNING)
    store.set_phase(spec.name, "validation")
    try:
        ok = _validate(spec, store, validation)
    except OpenDMSError as exc:
        _record_end(store, spec.name, TaskStatus.FAILED, str(exc), exc)
        raise
    reason = "VALIDATION_ONLY_FINISHED" if ok else "VALIDATION_FAILED"
    transition(store, spec.name, TaskStatus.STOPPED, reason)
    return LoadResult(0, 0, {})


def _finish(
    spec: TaskSpec,
    store: StateStore,
    result: LoadResult,
    cdc: bool,
    stop: threading.Event,
    stop_reason: str,
) -> None:
    """The run's end in the store, with DMS's stop reason: FULL_LOAD_ONLY_FINISHED,
    STOPPED_BY_USER, CAUGHT_UP (a run without ``--follow``), STOP_POSITION_REACHED,
    STOPPED_AFTER_FULL_LOAD or STOPPED_AFTER_CACHED_EVENTS (FullLoadSettings
    StopTaskCachedChangesNotApplied / Applied)."""
    if result.failed:
        names = ", ".join(sorted(result.failed))
        reason = f"{len(result.failed)} table(s) failed: {names}"
        first = next(iter(sorted(result.failed.items())))
        failure = TaskError(f"task {spec.name}: {reason}; {first[0]}: {first[1]}")
        _record_end(store, spec.name, TaskStatus.FAILED, reason, failure)
        raise failure
    if not cdc:
        reason = "FULL_LOAD_ONLY_FINISHED"
    else:
        reason = stop_reason or (STOPPED_BY_USER if stop.is_set() else "CAUGHT_UP")
    transition(store, spec.name, TaskStatus.STOPPED, reason)


def _run(
    spec: TaskSpec,
    mappings: TableMappings,
    store: StateStore,
    progress: Progress | None,
    control: tuple[threading.Event, bool, bool],
    hooks: tuple[Validation, ChangeHandoff | None],
) -> tuple[LoadResult, str]:
    """Run once; after it got going, a recoverable error (a lost connection, a server
    restart) runs it again from its checkpoint per the RecoverableError* settings. An
    error before both endpoints ever opened is not retried: it is a setup problem."""
    stop, follow, fresh = control
    retries = Retries(spec.task_settings.ErrorBehavior)
    started = threading.Event()

    def attempt() -> tuple[LoadResult, str]:
        first = not started.is_set()
        control = (stop, follow, fresh and first)
        return _run_once(spec, mappings, store, progress, control, (started, *hooks))

    def note(exc: OpenDMSError, wait: float) -> None:
        store.set_phase(spec.name, f"recovering (attempt {retries.attempts}): {exc}"[:500])

    return retrying(f"task {spec.name}", attempt, retries, stop, note, started.is_set)


def _run_once(
    spec: TaskSpec,
    mappings: TableMappings,
    store: StateStore,
    progress: Progress | None,
    control: tuple[threading.Event, bool, bool],
    context: tuple[threading.Event, Validation, ChangeHandoff | None],
) -> tuple[LoadResult, str]:
    started, validation, handoff = context
    source: Source = open_source(spec.source.url, spec.source.settings)
    try:
        target: Target = open_target(spec.target.url, spec.target.settings, spec.name)
        first = not started.is_set()  # a retry after a recoverable error is running already
        started.set()
        try:
            if first:
                transition(store, spec.name, TaskStatus.RUNNING)
            if spec.migration_type is MigrationType.FULL_LOAD:
                store.set_phase(spec.name, "full load")
                return FullLoad(spec, source, target, mappings, store, progress).run(), ""
            check_cdc_pair(spec, source, target)
            replication = Replication(spec, source, target, mappings, store, progress, validation)
            stop, follow, replication.fresh = control
            replication.handoff = handoff
            outcome = replication.run(stop, follow)
            return outcome.load or LoadResult(0, 0, {}), outcome.stop_reason
        finally:
            target.close()
    finally:
        source.close()
