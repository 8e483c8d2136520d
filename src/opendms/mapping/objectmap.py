"""DMS ``object-mapping`` rules: how a table's rows become DynamoDB items.

A rule names one source table (``object-locator``: exact names, or ``%`` / ``_``
wildcards as in selection rules) and says what its items look like:

* ``rule-action``: ``map-record-to-record`` (every column not excluded becomes a
  top-level attribute of its own name) or ``map-record-to-document`` (those columns go
  into one map attribute ``_doc``);
* ``target-table-name``: the DynamoDB table (it renames the planned target table, so
  statistics and validation name it too);
* ``mapping-parameters``: ``partition-key-name`` and ``sort-key-name`` (a mapped
  attribute or a column), ``exclude-columns`` (still usable in templates),
  ``attribute-mappings`` (``target-attribute-name``, ``attribute-type`` ``scalar`` or
  ``document``, ``attribute-sub-type`` ``string`` / ``number`` / ``boolean`` for scalars,
  ``dynamodb-map`` / ``dynamodb-list`` for documents, and ``value``: a template where
  ``${column}`` is that column's value; a document's value is DynamoDB JSON, with the
  templates in its leaf strings), ``condition-expression`` (``expression``,
  ``expression-attribute-values`` as ``[{"name": ":v", "value": {"S": "x"}}]``, optional
  ``expression-attribute-names``, ``apply-during-cdc`` default false,
  ``apply-during-full-load`` default true).

Columns named in templates, keys and ``exclude-columns`` are the target table's columns
(after the transformation rules), checked when the target table is prepared.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from opendms.mapping._reader import Node
from opendms.mapping.rules import COMMON_KEYS, TableRule, identity
from opendms.mapping.wildcards import Pattern

__all__ = [
    "DOC_ATTRIBUTE",
    "AttributeMapping",
    "Condition",
    "ObjectMappingRule",
    "parse_object_mapping",
    "template_columns",
]

DOC_ATTRIBUTE = "_doc"
"""The map attribute of ``map-record-to-document`` items."""

ACTIONS = ("map-record-to-record", "map-record-to-document")
SUB_TYPES = {
    "scalar": ("string", "number", "boolean"),
    "document": ("dynamodb-map", "dynamodb-list"),
}
_TYPE_KEYS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class AttributeMapping:
    """One ``attribute-mappings`` entry: ``value`` is a template (scalar) or DynamoDB
    JSON with templates in its leaf strings (document: ``{"M": ...}`` / ``{"L": ...}``)."""

    name: str
    kind: str  # scalar | document
    sub_type: str
    value: Any = field(hash=False)
    path: str = ""

    def columns(self) -> list[str]:
        """The columns its templates name, in order."""
        return template_columns(self.value)


@dataclass(frozen=True)
class Condition:
    """A ``condition-expression``: the DynamoDB ``ConditionExpression`` and its names and
    values (values in DynamoDB JSON), and when it applies."""

    expression: str
    values: dict[str, Any] = field(hash=False)
    names: dict[str, str] = field(hash=False)
    during_cdc: bool = False
    during_full_load: bool = True

    def call_args(self) -> dict[str, Any]:
        """The keyword arguments of a PutItem/UpdateItem/DeleteItem call."""
        out: dict[str, Any] = {"ConditionExpression": self.expression}
        if self.values:
            out["ExpressionAttributeValues"] = dict(self.values)
        if self.names:
            out["ExpressionAttributeNames"] = dict(self.names)
        return out


@dataclass(frozen=True)
class ObjectMappingRule(TableRule):
    """An ``object-mapping`` rule (see the module docstring)."""

    action: str = ACTIONS[0]
    target_table: str | None = None
    partition_key: str | None = None
    sort_key: str | None = None
    exclude: tuple[str, ...] = ()
    attributes: tuple[AttributeMapping, ...] = ()
    condition: Condition | None = None

    @property
    def to_document(self) -> bool:
        return self.action == "map-record-to-document"

    def attribute(self, name: str) -> AttributeMapping | None:
        return next((a for a in self.attributes if a.name == name), None)


def template_columns(value: Any) -> list[str]:
    """The ``${column}`` names in a template or in the leaf strings of a document."""
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [c for v in value.values() for c in template_columns(v)]
    if isinstance(value, list):
        return [c for v in value for c in template_columns(v)]
    return []


# -- parsing ------------------------------------------------------------------

_KEYS = (
    *COMMON_KEYS,
    "rule-action",
    "object-locator",
    "target-table-name",
    "mapping-parameters",
)
_PARAMS = (
    "partition-key-name",
    "sort-key-name",
    "exclude-columns",
    "attribute-mappings",
    "condition-expression",
)


def parse_object_mapping(node: Node) -> ObjectMappingRule:
    """An ``object-mapping`` rule; ConfigError with the JSON path of what is wrong."""
    node.object(_KEYS, required=(*COMMON_KEYS, "rule-action", "object-locator"))
    path, rule_id, name = identity(node)
    action = node.key("rule-action").choice(ACTIONS, "rule-action")
    loc = node.key("object-locator")
    loc.object(("schema-name", "table-name"), required=("schema-name", "table-name"))
    schema, table = (Pattern(loc.key(k).text()) for k in ("schema-name", "table-name"))
    target = node.key("target-table-name").text() if node.has("target-table-name") else None
    rule = ObjectMappingRule(path, rule_id, name, schema, table, action, target)
    if not node.has("mapping-parameters"):
        return rule
    return _with_parameters(rule, node.key("mapping-parameters"))


def _with_parameters(rule: ObjectMappingRule, node: Node) -> ObjectMappingRule:
    node.object(_PARAMS)
    partition = _optional_text(node, "partition-key-name")
    sort = _optional_text(node, "sort-key-name")
    if sort is not None and partition is None:
        node.key("sort-key-name").fail("a sort key needs a 'partition-key-name'")
    if sort is not None and sort == partition:
        node.key("sort-key-name").fail(f"{sort!r} is the partition key already")
    exclude = _names(node.key("exclude-columns")) if node.has("exclude-columns") else ()
    attributes = (
        _attributes(node.key("attribute-mappings")) if node.has("attribute-mappings") else ()
    )
    condition = None
    if node.has("condition-expression"):
        condition = _condition(node.key("condition-expression"))
    return ObjectMappingRule(
        rule.path,
        rule.rule_id,
        rule.name,
        rule.schema,
        rule.table,
        rule.action,
        rule.target_table,
        partition,
        sort,
        exclude,
        attributes,
        condition,
    )


def _optional_text(node: Node, key: str) -> str | None:
    return node.key(key).text() if node.has(key) else None


def _names(node: Node) -> tuple[str, ...]:
    items = list(node.items())
    names = tuple(item.text() for item in items)
    for i, name in enumerate(names):
        if name in names[:i]:
            items[i].fail(f"column {name!r} is listed twice")
    return names


def _attributes(node: Node) -> tuple[AttributeMapping, ...]:
    out: list[AttributeMapping] = []
    for item in node.items():
        found = _attribute(item)
        if any(a.name == found.name for a in out):
            item.key("target-attribute-name").fail(f"attribute {found.name!r} is mapped twice")
        out.append(found)
    return tuple(out)


def _attribute(node: Node) -> AttributeMapping:
    keys = ("target-attribute-name", "attribute-type", "attribute-sub-type", "value")
    node.object(keys, required=("target-attribute-name", "attribute-type", "value"))
    name = node.key("target-attribute-name").text()
    if name == DOC_ATTRIBUTE:
        node.key("target-attribute-name").fail(f"{DOC_ATTRIBUTE!r} is the document attribute")
    kind = node.key("attribute-type").choice(SUB_TYPES, "attribute-type")
    sub = SUB_TYPES[kind][0]
    if node.has("attribute-sub-type"):
        sub = node.key("attribute-sub-type").choice(SUB_TYPES[kind], f"{kind} attribute-sub-type")
    value_node = node.key("value")
    if kind == "scalar":
        value: Any = value_node.text(non_empty=False)
    else:
        value = _document(value_node, sub)
    for column in template_columns(value):
        if not column:
            value_node.fail("an empty placeholder '${}' names no column")
    return AttributeMapping(name, kind, sub, value, node.path)


def _document(node: Node, sub: str) -> Any:
    """A document value in DynamoDB JSON (an object, or JSON text of one)."""
    value = node.value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            node.fail(f"not DynamoDB JSON: {exc.msg}")
    want = "M" if sub == "dynamodb-map" else "L"
    if isinstance(value, dict) and list(value) == [want]:
        pass
    elif sub == "dynamodb-map" and isinstance(value, dict) and not _one_type(value):
        value = {"M": value}  # the map's entries given without the ``M`` wrapper
    else:
        node.fail(f"a {sub} value is DynamoDB JSON of the form {{{want!r}: ...}}")
    _check_attribute_value(Node(value, node.path, node.where))
    return value


def _one_type(value: dict[str, Any]) -> bool:
    """Whether ``value`` looks like one AttributeValue (``{"L": ...}``)."""
    return len(value) == 1 and next(iter(value)) in _TYPE_KEYS


def _check_attribute_value(node: Node) -> None:
    """``node`` is a DynamoDB JSON AttributeValue (one type key), recursively."""
    if not isinstance(node.value, dict) or len(node.value) != 1:
        node.fail(f"expected a DynamoDB JSON value with one of the keys {', '.join(_TYPE_KEYS)}")
    kind = next(iter(node.value))
    if kind not in _TYPE_KEYS:
        node.key(kind).fail(
            f"unknown DynamoDB type {kind!r} (expected one of {', '.join(_TYPE_KEYS)})"
        )
    inner = node.key(kind)
    if kind == "M":
        inner.object(inner.value if isinstance(inner.value, dict) else ())
        for key in inner.value:
            _check_attribute_value(inner.key(key))
    elif kind == "L":
        for item in inner.items():
            _check_attribute_value(item)
    elif kind in ("S", "N", "B"):
        inner.text(non_empty=False)
    elif kind in ("BOOL", "NULL") and not isinstance(inner.value, bool):
        inner.fail("expected true or false")


def _condition(node: Node) -> Condition:
    keys = (
        "expression",
        "expression-attribute-values",
        "expression-attribute-names",
        "apply-during-cdc",
        "apply-during-full-load",
    )
    node.object(keys, required=("expression",))
    expression = node.key("expression").text()
    values: dict[str, Any] = {}
    if node.has("expression-attribute-values"):
        values = _named(node.key("expression-attribute-values"), ":", checked=True)
    names: dict[str, str] = {}
    if node.has("expression-attribute-names"):
        names = _named(node.key("expression-attribute-names"), "#", checked=False)
    cdc = _flag(node, "apply-during-cdc", False)
    full = _flag(node, "apply-during-full-load", True)
    return Condition(expression, values, names, cdc, full)


def _named(node: Node, prefix: str, checked: bool) -> dict[str, Any]:
    """``[{"name": ":v", "value": ...}]`` as a dict (DMS's list form of the DynamoDB map)."""
    out: dict[str, Any] = {}
    for item in node.items(non_empty=True):
        item.object(("name", "value"), required=("name", "value"))
        name = item.key("name").text()
        if not name.startswith(prefix):
            item.key("name").fail(f"an expression attribute name here starts with {prefix!r}")
        if name in out:
            item.key("name").fail(f"{name!r} is given twice")
        value_node = item.key("value")
        if checked:
            _check_attribute_value(value_node)
            out[name] = value_node.value
        else:
            out[name] = value_node.text()
    return out


def _flag(node: Node, key: str, default: bool) -> bool:
    if not node.has(key):
        return default
    value = node.key(key).value
    if not isinstance(value, bool):
        node.key(key).fail("expected true or false")
    return value
