"""Validation of the DMS table-mapping document, rule by rule.

Every error names the JSON path of the offending field. Unknown keys are
errors, and so are keys that are known to DMS but mean nothing for the rule at
hand (``old-value`` on a ``rename``). ``null`` counts as absent.

A ``table-settings`` rule's ``lob-settings`` take ``mode`` (``limited``, the default;
``unlimited``; ``none``) and ``bulk-max-size`` (kilobytes, a JSON number or a string of
digits), which must be given and non-zero in limited mode.

Rejected as unsupported, with a clear error: the ``data-masking-*`` actions; a
``data-type`` filter in a column object-locator; parallel-load ``subpartitions-auto``
and ``subpartitions``. A table-settings
rule needs exact schema and table names (DMS: "Exact schema and table name required
when using table settings rule").
"""

from __future__ import annotations

from opendms.mapping._reader import Node
from opendms.mapping.objectmap import parse_object_mapping
from opendms.mapping.rules import (
    COMMON_KEYS,
    RULE_TYPES,
    LobSettings,
    ParallelLoad,
    PostProcessingRule,
    Rule,
    SelectionRule,
    SourceFilter,
    TableSettingsRule,
    identity,
)
from opendms.mapping.transform_parse import parse_transformation
from opendms.mapping.wildcards import Pattern
from opendms.model import Filter, FilterGroup

MAX_TAGS = 10  # S3's limit of tags per object

FILTER_OPERANDS: dict[str, tuple[str, ...]] = {
    "eq": ("value",),
    "noteq": ("value",),
    "gte": ("value",),
    "lte": ("value",),
    "ste": ("value",),  # the DMS guide's alias of lte
    "between": ("start-value", "end-value"),
    "notbetween": ("start-value", "end-value"),
    "null": (),
    "notnull": (),
}
_NEGATIVE_OPERATORS = ("noteq", "notbetween", "notnull")
_ALIASES = {"ste": "lte"}
PARALLEL_LOAD_TYPES = ("ranges", "partitions-auto", "partitions-list", "none")
_MAX_RANGE_COLUMNS = 10

__all__ = ["parse_rules"]


def parse_rules(root: Node) -> list[Rule]:
    """All rules of the document, in document order; rule-ids must be unique."""
    if isinstance(root.value, list):
        rules_node = root
    else:
        if isinstance(root.value, dict) and "rule-type" in root.value:
            root.fail('this is one rule; a mapping document is {"rules": [...]}: wrap it so')
        root.object(("rules",), required=("rules",))
        rules_node = root.key("rules")
    rules: list[Rule] = []
    seen: dict[int, str] = {}
    for node in rules_node.items():
        rule = _parse_rule(node)
        if rule.rule_id in seen:
            node.key("rule-id").fail(
                f"duplicate rule-id {rule.rule_id} (also {seen[rule.rule_id]})"
            )
        seen[rule.rule_id] = rule.path
        rules.append(rule)
    return rules


def _parse_rule(node: Node) -> Rule:
    if not isinstance(node.value, dict):
        node.fail("expected a rule object")
    type_node = node.key("rule-type")
    if type_node.value is None:
        type_node.fail("required field is missing")
    rule_type = type_node.choice(RULE_TYPES, "rule-type")
    if rule_type == "selection":
        return _parse_selection(node)
    if rule_type == "transformation":
        return parse_transformation(node)
    if rule_type == "post-processing":
        return _parse_post_processing(node)
    if rule_type == "object-mapping":
        return parse_object_mapping(node)
    return _parse_table_settings(node)


def _parse_post_processing(node: Node) -> PostProcessingRule:
    """``add-tag`` (the only post-processing action): S3 object tags."""
    known = (*COMMON_KEYS, "rule-action", "object-locator", "tag-set")
    node.object(known, required=known)
    path, rule_id, name = identity(node)
    node.key("rule-action").choice(("add-tag",), "rule-action")
    loc = node.key("object-locator")
    loc.object(("schema-name", "table-name"), required=("schema-name", "table-name"))
    schema, table = (Pattern(loc.key(k).text()) for k in ("schema-name", "table-name"))
    tags = []
    for item in node.key("tag-set").items(non_empty=True):
        item.object(("key", "value"), required=("key", "value"))
        tags.append((item.key("key").text(), item.key("value").text(non_empty=False)))
    if len(tags) > MAX_TAGS:
        node.key("tag-set").fail(f"an S3 object takes at most {MAX_TAGS} tags")
    return PostProcessingRule(path, rule_id, name, schema, table, tuple(tags))


# -- selection ---------------------------------------------------------------


def _parse_selection(node: Node) -> SelectionRule:
    known = (*COMMON_KEYS, "rule-action", "object-locator", "filters", "load-order")
    node.object(known, required=(*COMMON_KEYS, "rule-action", "object-locator"))
    path, rule_id, name = identity(node)
    action = node.key("rule-action").choice(("include", "exclude", "explicit"), "rule-action")
    loc = node.key("object-locator")
    loc.object(("schema-name", "table-name", "table-type"), required=("schema-name", "table-name"))
    schema, table = (_selection_pattern(loc.key(k), action) for k in ("schema-name", "table-name"))
    table_type = "table"
    if loc.has("table-type"):
        table_type = loc.key("table-type").choice(("table", "view", "all"), "table-type")
    filters: tuple[SourceFilter, ...] = ()
    if node.has("filters"):
        filters = tuple(_parse_filter(f) for f in node.key("filters").items())
        if filters and action == "exclude":
            node.key("filters").fail("filters apply only to include and explicit rules")
    load_order = 0
    if node.has("load-order"):
        if action == "exclude":
            node.key("load-order").fail("load-order applies only to include and explicit rules")
        load_order = node.key("load-order").integer()
    return SelectionRule(
        path, rule_id, name, schema, table, action, table_type, filters, load_order
    )


def _selection_pattern(node: Node, action: str) -> Pattern:
    text = node.text()
    if action != "explicit":
        return Pattern(text)
    if "%" in text:
        node.fail("wildcards are not allowed in an explicit rule (it names one table exactly)")
    return Pattern(text, exact=True)


def _parse_filter(node: Node) -> SourceFilter:
    keys = ("filter-type", "column-name", "filter-conditions")
    node.object(keys, required=keys)
    node.key("filter-type").choice(("source",), "filter-type")
    column = node.key("column-name").text()
    cond_nodes = list(node.key("filter-conditions").items(non_empty=True))
    conditions = tuple(_parse_condition(c, column) for c in cond_nodes)
    if len(conditions) > 1:
        for cond, cnode in zip(conditions, cond_nodes, strict=True):
            if cond.op in _NEGATIVE_OPERATORS:
                cnode.key("filter-operator").fail(
                    f"a negative operator ({cond.op}) must be the only condition of its filter"
                )
    return SourceFilter(FilterGroup(column, conditions), node.key("column-name").path)


def _parse_condition(node: Node, column: str) -> Filter:
    node.object(
        ("filter-operator", "value", "start-value", "end-value"), required=("filter-operator",)
    )
    op = node.key("filter-operator").choice(FILTER_OPERANDS, "filter-operator")
    operands = FILTER_OPERANDS[op]
    for key in ("value", "start-value", "end-value"):
        if key not in operands:
            node.absent(key, f"{key!r} is not used by filter-operator {op!r}")
        elif not node.has(key):
            node.key(key).fail(f"filter-operator {op!r} needs {key!r}")
    values = tuple(node.key(k).scalar_text() for k in operands)
    return Filter(column, _ALIASES.get(op, op), values)


# -- table-settings ----------------------------------------------------------


def _parse_table_settings(node: Node) -> TableSettingsRule:
    known = (*COMMON_KEYS, "object-locator", "parallel-load", "lob-settings")
    node.object(known, required=(*COMMON_KEYS, "object-locator"))
    path, rule_id, name = identity(node)
    loc = node.key("object-locator")
    loc.object(("schema-name", "table-name"), required=("schema-name", "table-name"))
    for key in ("schema-name", "table-name"):
        if "%" in loc.key(key).text():
            loc.key(key).fail(
                "exact schema and table name required when using table settings rule (no wildcards)"
            )
    # exact names: an ``_`` is itself, not the one-character wildcard
    schema, table = (Pattern(loc.key(k).text(), exact=True) for k in ("schema-name", "table-name"))
    if not node.has("parallel-load") and not node.has("lob-settings"):
        node.fail("a table-settings rule needs 'parallel-load' or 'lob-settings'")
    parallel = (
        _parse_parallel_load(node.key("parallel-load")) if node.has("parallel-load") else None
    )
    lob = _parse_lob_settings(node.key("lob-settings")) if node.has("lob-settings") else None
    return TableSettingsRule(path, rule_id, name, schema, table, parallel, lob)


def _parse_parallel_load(node: Node) -> ParallelLoad:
    node.object(
        ("type", "columns", "boundaries", "partitions", "subpartitions", "segment-names"),
        required=("type",),
    )
    type_node = node.key("type")
    if type_node.value == "subpartitions-auto":
        type_node.fail("parallel-load type 'subpartitions-auto' is not supported by opendms")
    kind = type_node.choice(PARALLEL_LOAD_TYPES, "parallel-load type")
    node.absent("subpartitions", "subpartitions are not supported by opendms")
    needs = {"ranges": ("columns", "boundaries"), "partitions-list": ("partitions",)}.get(kind, ())
    optional = ("segment-names",) if kind == "ranges" else ()
    for key in ("columns", "boundaries", "partitions", "segment-names"):
        if key in optional:
            continue
        if key not in needs:
            node.absent(key, f"{key!r} is not used by parallel-load type {kind!r}")
        elif not node.has(key):
            node.key(key).fail(f"parallel-load type {kind!r} needs {key!r}")
    if kind == "ranges":
        return _parse_ranges(node)
    if kind == "partitions-list":
        parts = tuple(_partition_name(p) for p in node.key("partitions").items(non_empty=True))
        return ParallelLoad(kind, partitions=parts)
    return ParallelLoad(kind)


def _parse_ranges(node: Node) -> ParallelLoad:
    col_nodes = list(node.key("columns").items(non_empty=True))
    columns = tuple(c.text() for c in col_nodes)
    if len(columns) > _MAX_RANGE_COLUMNS:
        node.key("columns").fail(f"at most {_MAX_RANGE_COLUMNS} columns are allowed")
    for i, col in enumerate(columns):
        if col in columns[:i]:
            col_nodes[i].fail(f"column {col!r} is listed twice")
    boundaries: list[tuple[str, ...]] = []
    for bnode in node.key("boundaries").items(non_empty=True):
        values = tuple(v.scalar_text() for v in bnode.items(non_empty=True))
        if len(values) != len(columns):
            bnode.fail(f"has {len(values)} values for {len(columns)} columns")
        boundaries.append(values)
    names: tuple[str, ...] = ()
    if node.has("segment-names"):
        names = _segment_names(node.key("segment-names"), len(boundaries) + 1)
    return ParallelLoad(
        "ranges", columns=columns, boundaries=tuple(boundaries), segment_names=names
    )


def _segment_names(node: Node, count: int) -> tuple[str, ...]:
    """One name per range segment (boundaries + 1): lake folder names, so distinct and
    without path separators."""
    name_nodes = list(node.items(non_empty=True))
    names = tuple(n.text() for n in name_nodes)
    if len(names) != count:
        node.fail(f"has {len(names)} names for {count} segments (boundaries + 1)")
    for i, (name, name_node) in enumerate(zip(names, name_nodes, strict=True)):
        if name in names[:i]:
            name_node.fail(f"segment name {name!r} is listed twice")
        if "/" in name or "\\" in name or name in (".", ".."):
            name_node.fail(f"segment name {name!r} cannot be a folder name")
    return names


def _partition_name(node: Node) -> str:
    if isinstance(node.value, dict):
        node.object(("partition-name",), required=("partition-name",))
        return node.key("partition-name").text()
    return node.text()


def _parse_lob_settings(node: Node) -> LobSettings:
    node.object(("mode", "bulk-max-size"))
    mode = (
        node.key("mode").choice(("limited", "unlimited", "none"), "LOB mode")
        if node.has("mode")
        else None
    )
    size = node.key("bulk-max-size").integer() if node.has("bulk-max-size") else None
    if mode in (None, "limited") and not size:
        where = node.key("bulk-max-size") if node.has("bulk-max-size") else node
        where.fail(
            "limited LOB mode (the default mode) needs a non-zero 'bulk-max-size' "
            "(the largest LOB size to keep, in kilobytes)"
        )
    return LobSettings(mode, size)
