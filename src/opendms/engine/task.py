"""Run a task end to end: record it, open endpoints, full load, final status."""

from __future__ import annotations

import json
import logging

from opendms.config import MigrationType, TaskSpec
from opendms.endpoints import open_source, open_target
from opendms.endpoints.base import Source, Target, mask
from opendms.engine.fullload import FullLoad, LoadResult
from opendms.engine.progress import Progress
from opendms.errors import ConfigError, OpenDMSError, TaskError
from opendms.mapping import TableMappings, parse_table_mappings
from opendms.state import StateStore, TaskStatus

log = logging.getLogger("opendms.task")

DEFAULT_MAPPINGS = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "%", "table-name": "%"},
            "rule-action": "include",
        }
    ]
}


def task_mappings(spec: TaskSpec) -> TableMappings:
    """The task's table mappings (all tables of all schemas when none are given)."""
    data = spec.table_mappings if spec.table_mappings is not None else DEFAULT_MAPPINGS
    return parse_table_mappings(data, where=f"task {spec.name}: table_mappings")


def check_supported(spec: TaskSpec) -> None:
    if spec.migration_type is not MigrationType.FULL_LOAD:
        raise ConfigError(
            f"migration type {spec.migration_type.value!r} is not yet supported "
            "(only 'full-load' in this version)",
            where=f"task {spec.name}",
            path="$.migration_type",
        )


def register(spec: TaskSpec, store: StateStore) -> None:
    """Record (or redefine) the task in the state store."""
    body = spec.model_dump(mode="json")
    body["source"]["url"] = mask(spec.source.url)
    body["target"]["url"] = mask(spec.target.url)
    store.save_task(
        spec.name,
        mask(spec.source.url),
        mask(spec.target.url),
        spec.migration_type.value,
        json.dumps(body),
    )


def run_task(spec: TaskSpec, store: StateStore, progress: Progress | None = None) -> LoadResult:
    """Run a full-load task; raises TaskError when any table failed."""
    check_supported(spec)
    mappings = task_mappings(spec)
    register(spec, store)
    store.reset_tables(spec.name)
    store.set_status(spec.name, TaskStatus.STARTING)
    try:
        result = _run(spec, mappings, store, progress)
    except KeyboardInterrupt:
        store.set_status(spec.name, TaskStatus.STOPPED, "STOPPED_BY_USER")
        raise
    except OpenDMSError as exc:
        store.set_status(spec.name, TaskStatus.FAILED, str(exc))
        raise
    except Exception as exc:
        store.set_status(spec.name, TaskStatus.FAILED, f"internal error: {exc!r}")
        raise
    if result.failed:
        names = ", ".join(sorted(result.failed))
        reason = f"{len(result.failed)} table(s) failed: {names}"
        store.set_status(spec.name, TaskStatus.FAILED, reason)
        first = next(iter(sorted(result.failed.items())))
        raise TaskError(f"task {spec.name}: {reason}; {first[0]}: {first[1]}")
    store.set_status(spec.name, TaskStatus.STOPPED, "FULL_LOAD_ONLY_FINISHED")
    return result


def _run(
    spec: TaskSpec, mappings: TableMappings, store: StateStore, progress: Progress | None
) -> LoadResult:
    source: Source = open_source(spec.source.url, spec.source.settings)
    try:
        target: Target = open_target(spec.target.url, spec.target.settings)
        try:
            store.set_status(spec.name, TaskStatus.RUNNING)
            return FullLoad(spec, source, target, mappings, store, progress).run()
        finally:
            target.close()
    finally:
        source.close()
