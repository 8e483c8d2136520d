"""DMS ``object-mapping`` rules: parsing (each error with its JSON path), the rule a
table gets, and ``target-table-name`` renaming the planned target table."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from opendms.errors import ConfigError
from opendms.mapping import parse_table_mappings
from opendms.mapping.objectmap import ObjectMappingRule
from opendms.model import Column, ColumnType, Kind, Table

SELECT = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "all",
    "object-locator": {"schema-name": "hr", "table-name": "%"},
    "rule-action": "include",
}
RULE: dict[str, Any] = {
    "rule-type": "object-mapping",
    "rule-id": "2",
    "rule-name": "emp",
    "rule-action": "map-record-to-record",
    "object-locator": {"schema-name": "hr", "table-name": "employee"},
    "target-table-name": "Employees",
    "mapping-parameters": {
        "partition-key-name": "dept",
        "sort-key-name": "emp_key",
        "exclude-columns": ["first_name", "last_name"],
        "attribute-mappings": [
            {
                "target-attribute-name": "emp_key",
                "attribute-type": "scalar",
                "attribute-sub-type": "string",
                "value": "${emp_id}",
            },
            {
                "target-attribute-name": "full_name",
                "attribute-type": "scalar",
                "attribute-sub-type": "string",
                "value": "${first_name} ${last_name}",
            },
            {
                "target-attribute-name": "contact",
                "attribute-type": "document",
                "attribute-sub-type": "dynamodb-map",
                "value": {"M": {"city": {"S": "${city}"}, "n": {"N": "${emp_id}"}}},
            },
        ],
        "condition-expression": {
            "expression": "attribute_not_exists(#k) OR salary < :max",
            "expression-attribute-values": [{"name": ":max", "value": {"N": "1000"}}],
            "expression-attribute-names": [{"name": "#k", "value": "dept"}],
            "apply-during-cdc": True,
        },
    },
}


def _rule(rule: dict[str, Any]) -> ObjectMappingRule:
    mappings = parse_table_mappings({"rules": [SELECT, rule]})
    found = mappings.object_mapping("hr", "employee")
    assert found is not None
    return found


def test_a_full_rule_is_parsed() -> None:
    rule = _rule(RULE)
    assert rule.action == "map-record-to-record" and not rule.to_document
    assert rule.target_table == "Employees"
    assert (rule.partition_key, rule.sort_key) == ("dept", "emp_key")
    assert rule.exclude == ("first_name", "last_name")
    assert [a.name for a in rule.attributes] == ["emp_key", "full_name", "contact"]
    assert rule.attributes[1].columns() == ["first_name", "last_name"]
    contact = rule.attributes[2]
    assert (contact.kind, contact.sub_type) == ("document", "dynamodb-map")
    assert contact.columns() == ["city", "emp_id"]
    cond = rule.condition
    assert cond is not None and cond.during_cdc and cond.during_full_load
    assert cond.call_args() == {
        "ConditionExpression": "attribute_not_exists(#k) OR salary < :max",
        "ExpressionAttributeValues": {":max": {"N": "1000"}},
        "ExpressionAttributeNames": {"#k": "dept"},
    }


def test_a_minimal_rule_and_document_value_as_json_text() -> None:
    rule = {
        "rule-type": "object-mapping",
        "rule-id": 3,
        "rule-name": "m",
        "rule-action": "map-record-to-document",
        "object-locator": {"schema-name": "hr", "table-name": "emp%"},
        "mapping-parameters": {
            "attribute-mappings": [
                {
                    "target-attribute-name": "tags",
                    "attribute-type": "document",
                    "attribute-sub-type": "dynamodb-list",
                    "value": '{"L": [{"S": "${a}"}, {"BOOL": true}]}',
                }
            ]
        },
    }
    found = _rule(rule)
    assert found.to_document and found.target_table is None and found.partition_key is None
    assert found.attributes[0].value == {"L": [{"S": "${a}"}, {"BOOL": True}]}


def test_other_tables_have_no_rule_and_two_rules_for_one_table_fail() -> None:
    mappings = parse_table_mappings({"rules": [SELECT, RULE]})
    assert mappings.object_mapping("hr", "dept") is None
    second = {**copy.deepcopy(RULE), "rule-id": "9"}
    twice = parse_table_mappings({"rules": [SELECT, RULE, second]})
    with pytest.raises(ConfigError, match=r"\$\.rules\[2\].*also set by \$\.rules\[1\]"):
        twice.object_mapping("hr", "employee")


def _set(path: str, value: Any) -> dict[str, Any]:
    """RULE with the value at dotted ``path`` replaced (``None``: deleted)."""
    rule = copy.deepcopy(RULE)
    node: Any = rule
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if value is None:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return rule


ATTRS = "mapping-parameters.attribute-mappings"
BAD: list[tuple[str, Any, str]] = [
    ("rule-action", "map-record-to-item", r"\$\.rules\[1\]\.rule-action: unknown rule-action"),
    ("object-locator", None, r"\$\.rules\[1\]\.object-locator: required"),
    ("object-locator.table-name", None, r"object-locator\.table-name: required"),
    ("target-table-name", "", r"target-table-name: expected a non-empty string"),
    ("mapping-parameters.bogus", 1, r"mapping-parameters\.bogus: unknown key"),
    ("mapping-parameters.partition-key-name", None, r"sort-key-name: a sort key needs"),
    ("mapping-parameters.sort-key-name", "dept", r"sort-key-name: 'dept' is the partition"),
    ("mapping-parameters.exclude-columns", "x", r"exclude-columns: expected an array"),
    ("mapping-parameters.exclude-columns.1", "first_name", r"exclude-columns\[1\]: column"),
    (f"{ATTRS}.0.attribute-type", "list", r"attribute-mappings\[0\]\.attribute-type: unknown"),
    (f"{ATTRS}.0.attribute-sub-type", "dynamodb-map", r"\[0\]\.attribute-sub-type: unknown"),
    (f"{ATTRS}.2.attribute-sub-type", "string", r"\[2\]\.attribute-sub-type: unknown"),
    (f"{ATTRS}.0.value", None, r"attribute-mappings\[0\]\.value: required"),
    (f"{ATTRS}.1.value", "${}", r"\[1\]\.value: an empty placeholder"),
    (f"{ATTRS}.1.target-attribute-name", "emp_key", r"\[1\]\.target-attribute-name: .* twice"),
    (f"{ATTRS}.1.target-attribute-name", "_doc", r"\[1\]\.target-attribute-name: '_doc'"),
    (f"{ATTRS}.2.value", {"L": []}, r"\[2\]\.value: a dynamodb-map value"),
    (f"{ATTRS}.2.value", "{nope", r"\[2\]\.value: not DynamoDB JSON"),
    (f"{ATTRS}.2.value", {"M": {"a": {"X": "1"}}}, r"\[2\]\.value\.M\.a\.X: unknown DynamoDB"),
    (f"{ATTRS}.2.value", {"M": {"a": {"BOOL": "y"}}}, r"value\.M\.a\.BOOL: expected true"),
    (f"{ATTRS}.2.value", {"M": {"a": {"S": 1}}}, r"value\.M\.a\.S: expected a string"),
    (
        "mapping-parameters.condition-expression.expression",
        None,
        r"condition-expression\.expression: required",
    ),
    (
        "mapping-parameters.condition-expression.apply-during-cdc",
        "yes",
        r"apply-during-cdc: expected true or false",
    ),
    (
        "mapping-parameters.condition-expression.expression-attribute-values.0.name",
        "max",
        r"expression-attribute-values\[0\]\.name: .* starts with ':'",
    ),
    (
        "mapping-parameters.condition-expression.expression-attribute-values.0.value",
        {"Q": "1"},
        r"expression-attribute-values\[0\]\.value\.Q: unknown DynamoDB type",
    ),
    (
        "mapping-parameters.condition-expression.expression-attribute-names.0.name",
        "k",
        r"expression-attribute-names\[0\]\.name: .* starts with '#'",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "message"), BAD, ids=[b[0] + "=" + str(b[1]) for b in BAD]
)
def test_a_bad_rule_fails_naming_its_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_table_mappings({"rules": [SELECT, _set(path, value)]})


EMPLOYEE = Table(
    "hr",
    "employee",
    (
        Column("emp_id", ColumnType(Kind.INT32), False),
        Column("first_name", ColumnType(Kind.STRING)),
    ),
    primary_key=("emp_id",),
)


def test_target_table_name_renames_the_planned_target_after_transformations() -> None:
    rename = {
        "rule-type": "transformation",
        "rule-id": "5",
        "rule-name": "lower",
        "rule-target": "table",
        "object-locator": {"schema-name": "hr", "table-name": "%"},
        "rule-action": "convert-uppercase",
    }
    mappings = parse_table_mappings({"rules": [SELECT, RULE, rename]})
    plan = mappings.plan(EMPLOYEE)
    assert (plan.target.schema, plan.target.name) == ("hr", "Employees")
    other = Table("hr", "dept", EMPLOYEE.columns, primary_key=("emp_id",))
    assert mappings.plan(other).target.name == "DEPT"
    without = _set("target-table-name", None)
    plain = parse_table_mappings({"rules": [SELECT, without, rename]}).plan(EMPLOYEE)
    assert plain.target.name == "EMPLOYEE"


class _Shaped:
    """A target that takes object mappings (as the DynamoDB target does)."""

    def __init__(self) -> None:
        self.given: dict[tuple[str, str], ObjectMappingRule | None] = {}

    def set_object_mappings(
        self, mappings: dict[tuple[str, str], ObjectMappingRule | None], quiet: bool = False
    ) -> None:
        self.given.update(mappings)


def test_each_planned_target_table_gets_its_rule_and_other_targets_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from opendms.engine.fullload import map_objects

    mappings = parse_table_mappings({"rules": [SELECT, RULE]})
    other = Table("hr", "dept", EMPLOYEE.columns, primary_key=("emp_id",))
    plans = [mappings.plan(EMPLOYEE), mappings.plan(other)]
    shaped = _Shaped()
    map_objects(shaped, mappings, plans)
    assert shaped.given == {("hr", "Employees"): _rule(RULE), ("hr", "dept"): None}
    with caplog.at_level("WARNING"):
        map_objects(object(), mappings, plans)
    assert [r.message for r in caplog.records] == [
        "object-mapping rules shape DynamoDB items: no effect on this target"
    ]
