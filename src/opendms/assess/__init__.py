"""Premigration assessment: what would make a task fail or change data, before it runs.

``assess(spec)`` connects to both endpoints, plans the task's tables like the task
would, and returns one :class:`Check` per check (id, status, objects, remediation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from opendms.assess.backlog import backlog_check
from opendms.assess.convert import convert_checks
from opendms.assess.model import Check, Status, passed, problem, skipped
from opendms.assess.types import lossy, type_check
from opendms.config import MigrationType, TaskSpec
from opendms.endpoints import engine_for, open_source, open_target, table_identity
from opendms.endpoints.base import EndpointURL, PrepMode, Source, Target
from opendms.errors import ConfigError, DatabaseMissingError, OpenDMSError, TaskError
from opendms.mapping import TablePlan
from opendms.model import Table

__all__ = ["Check", "Status", "assess", "failed", "lossy", "skipped"]

log = logging.getLogger("opendms.assess")


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.status is Status.FAILED]


def assess(spec: TaskSpec) -> list[Check]:
    """Every check for the task (endpoint errors become failed checks, not exceptions)."""
    cdc = spec.migration_type is not MigrationType.FULL_LOAD
    from opendms.engine.plan import task_mappings

    task_mappings(spec)  # a mapping that does not parse is the task file's error: no connection
    try:
        source = open_source(spec.source.url, spec.source.settings)
    except ConfigError:
        raise  # a bad setting or URL is the task file's error, not a check
    except OpenDMSError as exc:
        return [problem("source-connection", True, str(exc), "fix the source endpoint URL")]
    try:
        try:
            target = open_target(spec.target.url, spec.target.settings, spec.name)
        except ConfigError:
            raise
        except OpenDMSError as exc:
            return [problem("target-connection", True, str(exc), "fix the target endpoint URL")]
        try:
            return _all(spec, source, target, cdc)
        finally:
            target.close()
    finally:
        source.close()


def _plans(spec: TaskSpec, source: Source) -> list[TablePlan]:
    """The task's tables as the task would plan them (planning writes nothing).

    Reading the source's tables may fail for reasons of the source (rights, a lost
    connection); applying the mapping rules to the tables read can only fail because
    of the mappings: any such error is raised as the ConfigError of the table mappings,
    never reported as a table the source user cannot read."""
    from opendms.engine.plan import Planner, selected

    planner = Planner(spec, source.url)
    refs = selected(planner.mappings, source)
    if not refs and spec.task_settings.ErrorBehavior.FailOnNoTablesCaptured:
        return planner.plan(source)  # its own error
    tables = [source.describe(ref) for ref in refs]
    try:
        return planner.plan_tables(tables)
    except (ConfigError, TaskError):  # the mapping's own error, or the task's refusal
        raise
    except Exception as exc:
        raise ConfigError(
            f"the table mappings do not apply to the source tables: {exc}",
            where=f"task {spec.name}: table_mappings",
        ) from exc


def _all(spec: TaskSpec, source: Source, target: Target, cdc: bool) -> list[Check]:
    try:
        plans = _plans(spec, source)
    except ConfigError:
        raise  # the table mappings do not fit the source tables
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        tables = _listed(spec, source)
        checks = [
            problem(
                "tables-selected",
                True,
                f"cannot read the selected tables: {message}",
                "check the selection rules and that the source user may read the tables",
                tuple(t.qualified for t in tables),
            )
        ]
        checks += _guarded("source", lambda: _source(spec, source.url, tables, cdc))
        return checks + _guarded("target", lambda: _target(spec, target, []))
    tables = [p.source for p in plans]
    checks = [passed("tables-selected", f"{len(tables)} table(s) selected")]
    checks += _guarded("source", lambda: _source(spec, source.url, tables, cdc))
    checks.append(type_check(plans, source.url, target.url, spec.convert_schema))
    checks += _guarded("target", lambda: _target(spec, target, plans))
    if spec.convert_schema:
        checks += convert_checks(spec, target.url, plans)
    if cdc:
        checks += _guarded("source", lambda: [backlog_check(spec)])
    return checks


def _listed(spec: TaskSpec, source: Source) -> list[Table]:
    """The selected tables by name only (when they cannot be described)."""
    from opendms.engine.plan import selected, task_mappings

    try:
        refs = selected(task_mappings(spec), source)
    except Exception:
        return []
    return [Table(r.schema, r.name, ()) for r in refs]


def _guarded(side: str, run: Callable[[], list[Check]]) -> list[Check]:
    try:
        return run()
    except OpenDMSError as exc:
        return [problem(f"{side}-checks", True, str(exc), f"fix the {side} endpoint")]


def _source(spec: TaskSpec, url: EndpointURL, tables: list[Table], cdc: bool) -> list[Check]:
    """The source engine's own checks (a PostgreSQL CDC source also needs a key or
    REPLICA IDENTITY FULL: pg-replica-identity fails for that), then the keys."""
    checks = engine_for(url).source_checks(url, tables, cdc, spec.source.settings)
    return [*checks, _unkeyed(tables, False)]


def _unkeyed(tables: list[Table], cdc: bool) -> Check:
    bad = tuple(t.qualified for t in tables if not t.primary_key)
    if not bad:
        return passed("tables-primary-key", "every table has a primary key")
    return problem(
        "tables-primary-key",
        cdc,
        f"{len(bad)} table(s) without a primary key: validation can only count whole rows"
        + (", and their updates and deletes cannot be keyed" if cdc else ""),
        "add a primary key (or promote a unique NOT NULL key to primary key)",
        bad,
    )


def _target(spec: TaskSpec, target: Target, plans: list[TablePlan]) -> list[Check]:
    url = target.url
    existing = _existing(url, plans)
    checks = engine_for(url).target_checks(url, spec.target.settings, existing)
    return [_prep(spec, existing), *checks]


def _existing(url: EndpointURL, plans: list[TablePlan]) -> list[str]:
    """Target tables of the plan that already exist on the target."""
    if not engine_for(url).capabilities.source:
        return []  # a lake: its files are replaced by the load
    try:
        reader = open_source(str(url.raw))
    except DatabaseMissingError:
        return []  # a MySQL target creates its database (as DMS does)
    try:
        have = {_identity(url, t.schema, t.name) for t in reader.list_tables()}
    finally:
        reader.close()
    return [
        p.target.qualified for p in plans if _identity(url, p.target.schema, p.target.name) in have
    ]


def _identity(url: EndpointURL, schema: str, name: str) -> tuple[str, ...]:
    """Where a table lives on the target, its engine's way, without case."""
    return tuple(part.lower() for part in table_identity(url, schema, name))


def _prep(spec: TaskSpec, existing: list[str]) -> Check:
    mode = spec.task_settings.FullLoadSettings.TargetTablePrepMode
    if not existing or spec.migration_type is MigrationType.CDC:
        return passed("target-existing-tables", "no selected table exists on the target yet")
    effect = {
        PrepMode.DROP_AND_CREATE: "will be dropped and created again",
        PrepMode.TRUNCATE_BEFORE_LOAD: "will be emptied before the load",
    }.get(mode, "will get the loaded rows added to what they hold")
    return problem(
        "target-existing-tables",
        False,
        f"{len(existing)} table(s) exist on the target and {effect} ({mode.value})",
        "check that nothing else needs them, or pick another TargetTablePrepMode / target",
        tuple(existing),
    )
