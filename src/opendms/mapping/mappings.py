"""The parsed table mappings and the questions the engine asks them.

Selection (case-sensitive, on source names): a table is selected when an
``include`` rule matches it (wildcards) or an ``explicit`` rule names it
exactly, and no ``exclude`` rule matches it; ``exclude`` wins regardless of
rule order, over ``explicit`` too. Source filters of every include/explicit
rule matching a table are ANDed (conditions inside one filter are ORed).
When several ``table-settings`` rules with ``parallel-load`` match one table, that is
a ConfigError rather than a silent pick; so are two rules with ``lob-settings`` for one
table (found when the document is read: table-settings rules name exact tables).
A table-settings rule's ``lob-settings`` replace the task's LOB settings for its table
(:func:`opendms.mapping.lobs.table_lob_policy`).
An ``object-mapping`` rule (:mod:`opendms.mapping.objectmap`) shapes a table's DynamoDB
items; two of them matching one table is a ConfigError. Its ``target-table-name``
renames the planned target table (after the transformation rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from opendms.errors import ConfigError
from opendms.mapping._reader import Node, load_document
from opendms.mapping.lobs import WHOLE, LobPolicy, table_lob_policy
from opendms.mapping.objectmap import ObjectMappingRule
from opendms.mapping.parse import parse_rules
from opendms.mapping.plan import TablePlan, build_plan
from opendms.mapping.rules import (
    ParallelLoad,
    PostProcessingRule,
    Rule,
    SelectionRule,
    SourceFilter,
    TableSettingsRule,
    TransformationRule,
)
from opendms.model import FilterGroup, Table, TableRef

__all__ = ["TableMappings", "parse_table_mappings"]


class TableMappings:
    """A validated DMS table-mapping document."""

    def __init__(self, rules: Sequence[Rule], where: str = "table-mappings") -> None:
        self.where = where
        self.rules = tuple(rules)
        self.selections = tuple(r for r in rules if isinstance(r, SelectionRule))
        self.transformations = tuple(
            sorted((r for r in rules if isinstance(r, TransformationRule)), key=lambda r: r.rule_id)
        )
        self.table_settings = tuple(r for r in rules if isinstance(r, TableSettingsRule))
        self.post_processing = tuple(r for r in rules if isinstance(r, PostProcessingRule))
        self.object_mappings = tuple(r for r in rules if isinstance(r, ObjectMappingRule))
        self._check_lob_settings()

    def _check_lob_settings(self) -> None:
        """At most one table-settings rule with ``lob-settings`` per table."""
        seen: dict[tuple[str, str | None], TableSettingsRule] = {}
        for rule in self.table_settings:
            if rule.lob_settings is None:
                continue
            name = (rule.schema.text, rule.table.text if rule.table is not None else None)
            first = seen.setdefault(name, rule)
            if first is not rule:
                table = ".".join(n for n in name if n is not None)
                message = f"table {table}: lob-settings are also set by {first.path}"
                raise ConfigError(message, where=self.where, path=f"{rule.path}.lob-settings")

    def object_tags(self, schema: str, table: str) -> dict[str, str]:
        """S3 object tags of a source table's files: the tag set of one ``add-tag`` rule,
        one naming the table exactly before one with wildcards, else the first (DMS)."""
        matching = [r for r in self.post_processing if r.matches(schema, table)]
        if not matching:
            return {}
        best = next((r for r in matching if r.exact), matching[0])
        return best.tags_for(schema, table)

    def object_mapping(self, schema: str, table: str) -> ObjectMappingRule | None:
        """The ``object-mapping`` rule of source table ``schema.table`` (None: none);
        ConfigError when two rules match it."""
        found = [r for r in self.object_mappings if r.matches(schema, table)]
        if len(found) > 1:
            message = f"table {schema}.{table}: an object mapping is also set by {found[0].path}"
            raise ConfigError(message, where=self.where, path=found[1].path)
        return found[0] if found else None

    @property
    def has_selection(self) -> bool:
        """Whether the document has at least one selection rule."""
        return bool(self.selections)

    # -- selection -------------------------------------------------------------

    @property
    def wants_views(self) -> bool:
        """Whether a selection rule asks for views (``table-type`` ``view`` or ``all``)."""
        return any(r.table_type != "table" for r in self.selections)

    def _rules(self, ref: TableRef, view: bool) -> list[SelectionRule]:
        """The selection rules matching ``ref`` whose table-type covers its kind."""
        kinds = ("view", "all") if view else ("table", "all")
        return [r for r in self.selections if r.table_type in kinds and r.matches_ref(ref)]

    def _including(self, ref: TableRef, view: bool = False) -> list[SelectionRule]:
        return [r for r in self._rules(ref, view) if r.action != "exclude"]

    def is_selected(self, ref: TableRef, view: bool = False) -> bool:
        if any(r.action == "exclude" for r in self._rules(ref, view)):
            return False
        return bool(self._including(ref, view))

    def select(self, available: list[TableRef], views: Sequence[TableRef] = ()) -> list[TableRef]:
        """The tables of ``available`` (then the views of ``views``) the selection rules
        choose, in input order. A rule selects tables, views or both by its
        ``table-type`` (``table`` when not given)."""
        tables = [ref for ref in dict.fromkeys(available) if self.is_selected(ref)]
        chosen = [ref for ref in dict.fromkeys(views) if self.is_selected(ref, view=True)]
        return tables + [ref for ref in chosen if ref not in tables]

    def _source_filters(self, ref: TableRef, view: bool = False) -> list[SourceFilter]:
        return [f for r in self._including(ref, view) for f in r.filters]

    def filters_for(self, ref: TableRef, view: bool = False) -> tuple[FilterGroup, ...]:
        """Source filters for ``ref``: ANDed across groups, ORed within one."""
        return tuple(f.group for f in self._source_filters(ref, view))

    def load_order(self, ref: TableRef, view: bool = False) -> int:
        """The highest ``load-order`` of the rules selecting ``ref`` (0 if none)."""
        return max((r.load_order for r in self._including(ref, view)), default=0)

    # -- transformation ----------------------------------------------------------

    def plan(self, table: Table, lobs: LobPolicy = WHOLE) -> TablePlan:
        """The target table and column mapping for a described source table (``lobs``:
        the task's LOB settings, which the table's ``lob-settings`` may replace)."""
        ref = TableRef(table.schema, table.name)
        lobs = self.lob_policy(ref, lobs)
        names = {c.name for c in table.columns}
        filters = self._source_filters(ref, table.view)
        for f in filters:
            if f.group.column not in names:
                message = f"table {table.qualified} has no column {f.group.column!r} to filter on"
                raise ConfigError(message, where=self.where, path=f.path)
        groups = tuple(f.group for f in filters)
        plan = build_plan(table, self.transformations, groups, self.where, lobs)
        mapping = self.object_mapping(table.schema, table.name)
        if mapping is None or mapping.target_table is None:
            return plan
        return replace(plan, target=replace(plan.target, name=mapping.target_table))

    def check_removals(self, tables: Sequence[Table]) -> None:
        """A ``remove-column`` rule that removes nothing from any selected table it
        matches is a ConfigError: the column it was meant to keep off the target (often
        personal data) would otherwise arrive there silently."""
        for rule in self.transformations:
            if rule.action != "remove-column" or rule.column is None:
                continue
            matched = [t for t in tables if rule.matches(t.schema, t.name)]
            pattern = rule.column
            if matched and not any(pattern.matches(c.name) for t in matched for c in t.columns):
                names = ", ".join(t.qualified for t in matched[:3])
                more = " …" if len(matched) > 3 else ""
                raise ConfigError(
                    f"remove-column: no column matches {str(pattern)!r} in {names}{more} "
                    "(column names are case-sensitive)",
                    where=self.where,
                    path=f"{rule.path}.object-locator.column-name",
                )

    # -- table settings ------------------------------------------------------------

    def parallel_load(self, ref: TableRef) -> ParallelLoad | None:
        """The ``parallel-load`` setting of the table-settings rule matching ``ref``."""
        found = [r for r in self.table_settings if r.parallel_load and r.matches_ref(ref)]
        if len(found) > 1:
            message = f"table {ref}: parallel-load is also set by {found[0].path}"
            raise ConfigError(message, where=self.where, path=f"{found[1].path}.parallel-load")
        return found[0].parallel_load if found else None

    def lob_policy(self, ref: TableRef, task: LobPolicy) -> LobPolicy:
        """The LOB settings of the source table ``ref``: its table-settings rule's
        ``lob-settings`` (mode ``limited`` or ``unlimited``) replace the task's ``task``;
        without them, or with mode ``none``, the task's apply."""
        for rule in self.table_settings:
            if rule.lob_settings is not None and rule.matches_ref(ref):
                return table_lob_policy(rule.lob_settings, task)
        return task

    def lob_policies(self, task: LobPolicy) -> tuple[LobPolicy, ...]:
        """Every LOB policy a table of the task can have under the task's ``task``: the
        task's own and those of the ``lob-settings`` rules (the engine asks whether any
        of them cuts or drops anything)."""
        rules = self.table_settings
        return (task, *(table_lob_policy(r.lob_settings, task) for r in rules if r.lob_settings))


def parse_table_mappings(
    data: str | bytes | dict[str, Any] | list[Any], where: str = "table-mappings"
) -> TableMappings:
    """Parse and validate a DMS table-mapping document (JSON text or parsed).

    ``data`` is ``{"rules": [...]}`` (or the bare rules array). Raises
    ConfigError with the JSON path of the first problem found.
    """
    document = load_document(data, where)
    return TableMappings(parse_rules(Node(document, "$", where)), where)
