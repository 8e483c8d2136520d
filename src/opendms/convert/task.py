"""``convert_schema: true`` in a task: the converted DDL of the task's tables, each under
the schema and name the task's mapping rules give it on the target."""

from __future__ import annotations

import logging

from opendms.config import TaskSpec
from opendms.convert import TableConversion, table_conversion
from opendms.convert.catalog import target_dialect
from opendms.endpoints.base import EndpointURL, PrepMode
from opendms.endpoints.ddldialect import DdlDialect
from opendms.errors import ConfigError
from opendms.mapping import TablePlan
from opendms.model import Table

log = logging.getLogger("opendms.convert")


def task_conversion(
    spec: TaskSpec, target_url: EndpointURL, plans: list[TablePlan]
) -> TableConversion | None:
    """The conversion a DROP_AND_CREATE task with ``convert_schema`` creates its tables
    from (None: the task does not convert). Tables whose columns the rules rename, remove
    or add keep the plain form (logged): the converted constraints name source columns."""
    mode = spec.task_settings.FullLoadSettings.TargetTablePrepMode
    if not spec.convert_schema or mode is not PrepMode.DROP_AND_CREATE:
        return None
    try:
        dialect = target_dialect(target_url)
    except ConfigError as exc:
        raise ConfigError(
            "convert_schema needs a database target",
            where=f"task {spec.name}",
            path="$.convert_schema",
        ) from exc
    kept = [p for p in plans if same_columns(p)]
    for plan in plans:
        if plan not in kept:
            log.warning(
                "table %s: its columns are changed by the mapping rules; created without "
                "the converted schema",
                plan.source.qualified,
            )
    names = {
        (p.source.schema, p.source.name): (
            target_schema(dialect, target_url, p.target),
            p.target.name,
        )
        for p in kept
    }
    return table_conversion(spec.source.url, dialect.name, names)


def same_columns(plan: TablePlan) -> bool:
    """The rules keep every column as it is (names and order)."""
    names = [o.name for o in plan.outputs]
    sources = [o.source for o in plan.outputs]
    return names == sources == [c.name for c in plan.source.columns]


def target_schema(dialect: DdlDialect, url: EndpointURL, table: Table) -> str:
    """Where the target endpoint puts ``table`` (the URL's database if it names one, on
    targets whose databases are schemas)."""
    if dialect.database_schema:
        return url.database or table.schema
    return table.schema if dialect.keeps_schemas else ""
