"""Validation of ``transformation`` rules (see :mod:`opendms.mapping.parse`)."""

from __future__ import annotations

from opendms.mapping._reader import Node
from opendms.mapping.datatypes import parse_data_type
from opendms.mapping.expressions import check_syntax
from opendms.mapping.rules import (
    COMMON_KEYS,
    BeforeImageDef,
    PrimaryKeyDef,
    TransformationRule,
    identity,
)
from opendms.mapping.wildcards import Pattern

NAME_ACTIONS = (
    "rename",
    "convert-lowercase",
    "convert-uppercase",
    "add-prefix",
    "remove-prefix",
    "replace-prefix",
    "add-suffix",
    "remove-suffix",
    "replace-suffix",
)
TARGET_ACTIONS: dict[str, tuple[str, ...]] = {
    "schema": NAME_ACTIONS,
    "table": (*NAME_ACTIONS, "define-primary-key"),
    "column": (
        *NAME_ACTIONS,
        "remove-column",
        "include-column",
        "add-column",
        "change-data-type",
        "add-before-image-columns",
    ),
    "table-tablespace": ("rename",),
    "index-tablespace": ("rename",),
}
ACTIONS = tuple(dict.fromkeys(a for acts in TARGET_ACTIONS.values() for a in acts))
_TABLESPACE_KEYS = {
    "table-tablespace": "table-tablespace-name",
    "index-tablespace": "index-tablespace-name",
}
_UNSUPPORTED_ACTIONS = (
    "data-masking-digits-mask",
    "data-masking-digits-randomize",
    "data-masking-hash-mask",
)

# action -> (required keys, optional keys) among the action parameters
_PARAMS = ("value", "old-value", "expression", "data-type", "primary-key-def", "before-image-def")
_USES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rename": (("value",), ()),
    "add-prefix": (("value",), ()),
    "remove-prefix": (("value",), ()),
    "add-suffix": (("value",), ()),
    "remove-suffix": (("value",), ()),
    "replace-prefix": (("value", "old-value"), ()),
    "replace-suffix": (("value", "old-value"), ()),
    "add-column": (("value", "data-type"), ("expression",)),
    "change-data-type": (("data-type",), ()),
    "define-primary-key": (("primary-key-def",), ()),
    "add-before-image-columns": (("before-image-def",), ()),
}

_LOCATOR_KEYS = (
    "schema-name",
    "table-name",
    "column-name",
    "data-type",
    "table-tablespace-name",
    "index-tablespace-name",
)


def parse_transformation(node: Node) -> TransformationRule:
    """One ``transformation`` rule."""
    known = (*COMMON_KEYS, "rule-action", "rule-target", "object-locator", *_PARAMS)
    node.object(known, required=(*COMMON_KEYS, "rule-action", "rule-target", "object-locator"))
    path, rule_id, name = identity(node)
    target = _target(node.key("rule-target"))
    action = _action(node.key("rule-action"), target)
    required, optional = _USES.get(action, ((), ()))
    for key in _PARAMS:
        if key in required and not node.has(key):
            node.key(key).fail(f"rule-action {action!r} needs {key!r}")
        if key not in required and key not in optional:
            node.absent(key, f"{key!r} is not used by rule-action {action!r}")
    schema, table, column, tablespace = _locator(node.key("object-locator"), target, action)
    value = None
    if node.has("value"):
        value = node.key("value").text(non_empty=not action.startswith("replace-"))
    return TransformationRule(
        path,
        rule_id,
        name,
        schema,
        table,
        target,
        action,
        column,
        value=value,
        old_value=node.key("old-value").text() if node.has("old-value") else None,
        expression=_expression(node),
        data_type=parse_data_type(node.key("data-type")) if node.has("data-type") else None,
        primary_key=_primary_key(node.key("primary-key-def"))
        if node.has("primary-key-def")
        else None,
        tablespace=tablespace,
        before_image=_before_image(node.key("before-image-def"))
        if node.has("before-image-def")
        else None,
    )


def _target(node: Node) -> str:
    return node.choice(TARGET_ACTIONS, "rule-target")


def _action(node: Node, target: str) -> str:
    if node.value in _UNSUPPORTED_ACTIONS:
        node.fail(f"rule-action {node.value!r} is not supported by opendms")
    action = node.choice(ACTIONS, "rule-action")
    if action not in TARGET_ACTIONS[target]:
        node.fail(f"rule-action {action!r} does not apply to rule-target {target!r}")
    return action


def _locator(
    node: Node, target: str, action: str
) -> tuple[Pattern, Pattern | None, Pattern | None, Pattern | None]:
    node.object(_LOCATOR_KEYS, required=("schema-name",))
    if node.has("data-type"):
        node.key("data-type").fail("selecting columns by data-type is not supported by opendms")
    for key in ("table-tablespace-name", "index-tablespace-name"):
        if key != _TABLESPACE_KEYS.get(target):
            node.absent(key, f"{key!r} is not used by rule-target {target!r}")
    tablespace = None
    if target in _TABLESPACE_KEYS and node.has(_TABLESPACE_KEYS[target]):
        tablespace = Pattern(node.key(_TABLESPACE_KEYS[target]).text())
    wants_table = target != "schema"
    wants_column = target == "column" and action not in ("add-column", "add-before-image-columns")
    for key, wanted in (("table-name", wants_table), ("column-name", wants_column)):
        if wanted and not node.has(key):
            node.key(key).fail(f"required for rule-target {target!r} with rule-action {action!r}")
        if not wanted:
            node.absent(key, f"{key!r} is not used by rule-target {target!r}, action {action!r}")
    schema = Pattern(node.key("schema-name").text())
    table = Pattern(node.key("table-name").text()) if wants_table else None
    column = Pattern(node.key("column-name").text()) if wants_column else None
    return schema, table, column, tablespace


def _expression(node: Node) -> str | None:
    if not node.has("expression"):
        return None
    expr_node = node.key("expression")
    expr = expr_node.text()
    check_syntax(expr, where=expr_node.where, path=expr_node.path)
    return expr


def _before_image(node: Node) -> BeforeImageDef:
    """``before-image-def``: the affixes of the added columns and which columns get one."""
    node.object(("column-prefix", "column-suffix", "column-filter"))
    prefix = node.key("column-prefix").text(non_empty=False) if node.has("column-prefix") else ""
    suffix = node.key("column-suffix").text(non_empty=False) if node.has("column-suffix") else ""
    if not prefix and not suffix:
        prefix = "BI_"  # DMS's default prefix
    column_filter = "pk-only"
    if node.has("column-filter"):
        column_filter = node.key("column-filter").choice(
            ("pk-only", "non-lob", "all"), "column-filter"
        )
    return BeforeImageDef(prefix, suffix, column_filter)


def _primary_key(node: Node) -> PrimaryKeyDef:
    node.object(("name", "origin", "columns"), required=("name", "columns"))
    name = node.key("name").text()
    unique = False
    if node.has("origin"):
        origin = node.key("origin").choice(("primary-key", "unique-index"), "origin")
        unique = origin == "unique-index"
    col_nodes = list(node.key("columns").items(non_empty=True))
    columns = tuple(c.text() for c in col_nodes)
    for i, col in enumerate(columns):
        if col in columns[:i]:
            col_nodes[i].fail(f"column {col!r} is listed twice")
    return PrimaryKeyDef(name, columns, unique, node.key("columns").path)
