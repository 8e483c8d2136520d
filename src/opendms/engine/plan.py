"""Planning the full load: which source tables, and a :class:`TablePlan` for each.

Planning reads the source's catalog and applies the task's mapping rules; it writes
nothing (no state store, no target), so assessment and validation plan as the load does.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from opendms.config import TaskSpec
from opendms.endpoints import engine_for, same_database, table_identity
from opendms.endpoints.base import EndpointURL, Source
from opendms.errors import ConfigError, TaskError
from opendms.mapping import TableMappings, TablePlan, parse_table_mappings
from opendms.mapping.lobs import lob_policy
from opendms.model import Table, TableRef

log = logging.getLogger("opendms.fullload")

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

_warned_tablespaces: set[str] = set()
_warned_lobs: set[tuple[str, str]] = set()


def task_mappings(spec: TaskSpec) -> TableMappings:
    """The task's table mappings (all tables of all schemas when none are given)."""
    data = spec.table_mappings if spec.table_mappings is not None else DEFAULT_MAPPINGS
    return parse_table_mappings(data, where=f"task {spec.name}: table_mappings")


def selected(mappings: TableMappings, source: Source) -> list[TableRef]:
    """The source tables (and views, when a rule's table-type asks for them) the
    selection rules choose."""
    views = source.list_views() if mappings.wants_views else []
    return mappings.select(source.list_tables(), views)


def plan_tables(
    spec: TaskSpec, source: Source, mappings: TableMappings | None = None
) -> list[TablePlan]:
    """The plans of the task's selected source tables (its mappings unless given)."""
    return Planner(spec, source.url, mappings).plan(source)


class Planner:
    """Applies one task's mapping rules to described source tables; no I/O but the
    source catalog read by :meth:`plan`."""

    def __init__(
        self, spec: TaskSpec, source_url: EndpointURL, mappings: TableMappings | None = None
    ) -> None:
        self.spec = spec
        self.mappings = mappings if mappings is not None else task_mappings(spec)
        self.source_url = source_url
        self.target_url = EndpointURL.parse(spec.target.url)
        self.settings = spec.task_settings
        self.lobs = lob_policy(self.settings.TargetMetadata, where=f"task {spec.name}")

    def plan(self, source: Source) -> list[TablePlan]:
        refs = selected(self.mappings, source)
        if not refs and self.settings.ErrorBehavior.FailOnNoTablesCaptured:
            raise TaskError(
                "no tables captured: the selection rules match no source table "
                "(set ErrorBehavior.FailOnNoTablesCaptured to false to allow this)"
            )
        return self.plan_tables([source.describe(ref) for ref in refs])

    def plan_tables(self, tables: list[Table]) -> list[TablePlan]:
        """The plans of described source tables: the mapping rules applied, no I/O."""
        self.mappings.check_removals(tables)
        plans = [self.plan_one(table) for table in tables]
        self._log_limits(plans)
        self._refuse_self_copy(plans)
        self._refuse_collisions(plans)
        self._warn_tablespaces(plans)
        return plans

    def plan_one(self, table: Table) -> TablePlan:
        """The plan of one described source table (TargetSchema and the LOB settings
        applied: the task's, or the table's own ``lob-settings``)."""
        plan = self.mappings.plan(table, self.lobs)
        self._warn_lobs(plan)
        schema = self.settings.TargetMetadata.TargetSchema
        return replace(plan, target=replace(plan.target, schema=schema)) if schema else plan

    def _log_limits(self, plans: list[TablePlan]) -> None:
        """Which LOB limits the tables have: the task's once, a table's own per table."""
        policy = self.settings.ErrorBehavior.DataTruncationErrorPolicy.value
        limited = [p for p in plans if any(o.lob_limit is not None for o in p.outputs)]
        if any(p.lobs == self.lobs for p in limited):
            log.info(
                "task %s: limited LOB mode: LOB values longer than %d KB are truncated "
                "(TargetMetadata.LobMaxSize; DataTruncationErrorPolicy %s)",
                self.spec.name,
                self.lobs.max_kb,
                policy,
            )
        for plan in limited:
            if plan.lobs != self.lobs:
                log.info(
                    "table %s: limited LOB mode: LOB values longer than %d KB are truncated "
                    "(its table-settings %s; DataTruncationErrorPolicy %s)",
                    plan.source.qualified,
                    plan.lobs.max_kb,
                    plan.lobs.setting,
                    policy,
                )

    def _warn_tablespaces(self, plans: list[TablePlan]) -> None:
        """Tablespace rules act on PostgreSQL targets only: said once per task elsewhere."""
        if engine_for(self.target_url).capabilities.tablespaces:
            return
        named = [p for p in plans if p.target.tablespace or p.target.index_tablespace]
        if named and self.spec.name not in _warned_tablespaces:
            _warned_tablespaces.add(self.spec.name)
            log.warning(
                "task %s: table-tablespace/index-tablespace rules apply to PostgreSQL "
                "targets only; %s target tables are created without them (%s)",
                self.spec.name,
                self.target_url.scheme,
                ", ".join(p.target.qualified for p in named[:3]),
            )

    def _warn_lobs(self, plan: TablePlan) -> None:
        """SupportLobs false: one warning per table naming the LOB columns left out (and
        those kept as part of the key)."""
        if not (plan.lobs_dropped or plan.lob_keys_kept):
            return
        key = (self.spec.name, plan.source.qualified)
        if key in _warned_lobs:
            return
        _warned_lobs.add(key)
        kept = ""
        if plan.lob_keys_kept:
            kept = f"; kept as part of the key: {', '.join(plan.lob_keys_kept)}"
        log.warning(
            "table %s: LOB columns not migrated (TargetMetadata.SupportLobs false): %s%s",
            plan.source.qualified,
            ", ".join(plan.lobs_dropped) or "none",
            kept,
        )

    def _refuse_self_copy(self, plans: list[TablePlan]) -> None:
        """Never let a target prep mode drop or truncate the source table itself."""
        src_url, dst_url = self.source_url, self.target_url
        if not same_database(src_url, dst_url):
            return
        for plan in plans:
            src, dst = plan.source, plan.target
            if table_identity(src_url, src.schema, src.name) == table_identity(
                dst_url, dst.schema, dst.name
            ):
                raise TaskError(
                    f"table {src.qualified}: the target is the source table itself "
                    "(same database, schema and name); rename it with a transformation rule "
                    "or choose another target"
                )

    def _refuse_collisions(self, plans: list[TablePlan]) -> None:
        """Two source tables must not load into one target table."""
        seen: dict[tuple[str, ...], TablePlan] = {}
        for plan in plans:
            dst = plan.target
            first = seen.setdefault(table_identity(self.target_url, dst.schema, dst.name), plan)
            if first is not plan:
                raise ConfigError(
                    f"source tables {first.source.qualified} and {plan.source.qualified} "
                    f"both map to target table {dst.qualified}; rename one of them with a "
                    "transformation rule",
                    where=f"task {self.spec.name}",
                    path="$.table_mappings",
                )
