"""The parsed form of DMS table-mapping rules (see :mod:`opendms.mapping.parse`)."""

from __future__ import annotations

from dataclasses import dataclass

from opendms.mapping._reader import Node
from opendms.mapping.wildcards import Pattern
from opendms.model import ColumnType, FilterGroup, TableRef

COMMON_KEYS = ("rule-type", "rule-id", "rule-name")
RULE_TYPES = ("selection", "transformation", "table-settings", "post-processing", "object-mapping")


def identity(node: Node) -> tuple[str, int, str]:
    """(path, rule-id, rule-name) of a rule whose keys were already checked."""
    return node.path, node.key("rule-id").integer(), node.key("rule-name").name()


@dataclass(frozen=True)
class Rule:
    """What every rule has: its JSON path (``$.rules[3]``), id and name."""

    path: str
    rule_id: int
    name: str


@dataclass(frozen=True)
class TableRule(Rule):
    """A rule whose object-locator names a schema and (maybe) a table."""

    schema: Pattern
    table: Pattern | None

    def matches(self, schema: str, table: str) -> bool:
        if not self.schema.matches(schema):
            return False
        return self.table is None or self.table.matches(table)

    def matches_ref(self, ref: TableRef) -> bool:
        return self.matches(ref.schema, ref.name)


@dataclass(frozen=True)
class SourceFilter:
    """One ``filters`` entry of a selection rule; ``path`` is its JSON path."""

    group: FilterGroup
    path: str


@dataclass(frozen=True)
class SelectionRule(TableRule):
    action: str  # include | exclude | explicit
    table_type: str  # table | view | all: which kind of source object the rule selects
    filters: tuple[SourceFilter, ...]
    load_order: int


@dataclass(frozen=True)
class PrimaryKeyDef:
    """``primary-key-def``: a primary key, or a unique index when origin says so."""

    name: str
    columns: tuple[str, ...]
    unique_index: bool
    path: str


@dataclass(frozen=True)
class BeforeImageDef:
    """``before-image-def`` of ``add-before-image-columns``."""

    prefix: str
    suffix: str
    column_filter: str  # pk-only | non-lob | all


@dataclass(frozen=True)
class TransformationRule(TableRule):
    target: str  # schema | table | column | table-tablespace | index-tablespace
    action: str
    column: Pattern | None
    value: str | None = None
    old_value: str | None = None
    expression: str | None = None
    data_type: ColumnType | None = None
    primary_key: PrimaryKeyDef | None = None
    tablespace: Pattern | None = None  # table-/index-tablespace-name of the locator
    before_image: BeforeImageDef | None = None


@dataclass(frozen=True)
class ParallelLoad:
    """The ``parallel-load`` setting of a ``table-settings`` rule."""

    kind: str  # "ranges" | "partitions-auto" | "partitions-list" | "none"
    columns: tuple[str, ...] = ()
    boundaries: tuple[tuple[str, ...], ...] = ()
    partitions: tuple[str, ...] = ()
    segment_names: tuple[str, ...] = ()  # ranges: one name per segment (lake folders)


@dataclass(frozen=True)
class LobSettings:
    """``lob-settings`` of a ``table-settings`` rule: ``mode`` (None: not given, which is
    ``limited``) and ``bulk-max-size`` in kilobytes (non-zero in limited mode). Applied
    by :func:`opendms.mapping.lobs.table_lob_policy`."""

    mode: str | None
    bulk_max_size: int | None


@dataclass(frozen=True)
class TableSettingsRule(TableRule):
    parallel_load: ParallelLoad | None
    lob_settings: LobSettings | None


@dataclass(frozen=True)
class PostProcessingRule(TableRule):
    """A ``post-processing`` rule's ``add-tag``: S3 object tags of the matching tables'
    files (``${schema-name}`` and ``${table-name}`` in keys and values)."""

    tags: tuple[tuple[str, str], ...] = ()

    @property
    def exact(self) -> bool:
        """Whether the locator names one table (no wildcard): such a rule wins."""
        return self.schema.exact_name and self.table is not None and self.table.exact_name

    def tags_for(self, schema: str, table: str) -> dict[str, str]:
        def fill(text: str) -> str:
            return text.replace("${schema-name}", schema).replace("${table-name}", table)

        return {fill(k): fill(v) for k, v in self.tags}
