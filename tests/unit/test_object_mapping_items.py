"""Items built from rows and object mappings: the design note's worked examples A and B
attribute by attribute, keys, NULLs, templates, and the tables that need a mapping."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from opendms.changes import UNCHANGED
from opendms.endpoints.dynamodb.codec import CodecError
from opendms.endpoints.dynamodb.items import ItemShape, KeyAttribute
from opendms.errors import ConfigError
from opendms.mapping import parse_table_mappings
from opendms.mapping.objectmap import ObjectMappingRule
from opendms.model import Column, ColumnType, Kind, Table

EMPLOYEE = Table(
    "hr",
    "employee",
    (
        Column("emp_id", ColumnType(Kind.INT32), False),
        Column("first_name", ColumnType(Kind.STRING)),
        Column("last_name", ColumnType(Kind.STRING)),
        Column("dept", ColumnType(Kind.STRING)),
        Column("salary", ColumnType(Kind.DECIMAL, precision=10, scale=2)),
        Column("hired", ColumnType(Kind.DATE)),
        Column("notes", ColumnType(Kind.STRING)),
    ),
    primary_key=("emp_id",),
)
ROW = {
    "emp_id": 7,
    "first_name": "Ada",
    "last_name": "Byron",
    "dept": "R&D",
    "salary": Decimal("1234.50"),
    "hired": dt.date(2021, 3, 1),
    "notes": None,
}


def _scalar(name: str, value: str, sub: str = "string") -> dict[str, str]:
    return {
        "target-attribute-name": name,
        "attribute-type": "scalar",
        "attribute-sub-type": sub,
        "value": value,
    }


RULE_A: dict[str, Any] = {
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
            _scalar("emp_key", "${emp_id}"),
            _scalar("full_name", "${first_name} ${last_name}"),
        ],
    },
}
RULE_B: dict[str, Any] = {
    **RULE_A,
    "rule-action": "map-record-to-document",
    "mapping-parameters": {
        "partition-key-name": "pk",
        "exclude-columns": ["emp_id"],
        "attribute-mappings": [_scalar("pk", "EMP#${emp_id}")],
    },
}


def _rule(rule: dict[str, Any]) -> ObjectMappingRule:
    mappings = parse_table_mappings({"rules": [rule]})
    found = mappings.object_mapping("hr", "employee")
    assert found is not None
    return found


def test_worked_example_a_record_to_record() -> None:
    shape = ItemShape(EMPLOYEE, _rule(RULE_A))
    assert shape.key == (KeyAttribute("dept", "S"), KeyAttribute("emp_key", "S"))
    assert shape.item(ROW) == {
        "dept": {"S": "R&D"},
        "emp_key": {"S": "7"},
        "full_name": {"S": "Ada Byron"},
        "emp_id": {"N": "7"},
        "salary": {"N": "1234.50"},
        "hired": {"S": "2021-03-01"},
    }


def test_worked_example_b_record_to_document() -> None:
    shape = ItemShape(EMPLOYEE, _rule(RULE_B))
    assert shape.key == (KeyAttribute("pk", "S"),)
    assert shape.item(ROW) == {
        "pk": {"S": "EMP#7"},
        "_doc": {
            "M": {
                "first_name": {"S": "Ada"},
                "last_name": {"S": "Byron"},
                "dept": {"S": "R&D"},
                "salary": {"N": "1234.50"},
                "hired": {"S": "2021-03-01"},
            }
        },
    }


def test_a_document_key_column_stays_at_the_top_level_only() -> None:
    rule = copy.deepcopy(RULE_B)
    rule["mapping-parameters"] = {"partition-key-name": "dept", "sort-key-name": "emp_id"}
    item = ItemShape(EMPLOYEE, _rule(rule)).item(ROW)
    assert item["dept"] == {"S": "R&D"} and item["emp_id"] == {"N": "7"}
    assert set(item["_doc"]["M"]) == {"first_name", "last_name", "salary", "hired"}


def test_number_boolean_and_document_attributes() -> None:
    rule = copy.deepcopy(RULE_A)
    rule["mapping-parameters"]["attribute-mappings"] += [
        _scalar("pay", "${salary}", "number"),
        _scalar("pay_text", "${salary}00", "number"),
        _scalar("named", "${first_name}", "boolean"),
        {
            "target-attribute-name": "card",
            "attribute-type": "document",
            "attribute-sub-type": "dynamodb-map",
            "value": {
                "M": {
                    "who": {"S": "${first_name} ${last_name}"},
                    "ids": {"L": [{"N": "${emp_id}"}, {"S": "x${notes}y"}]},
                }
            },
        },
    ]
    item = ItemShape(EMPLOYEE, _rule(rule)).item(ROW)
    assert item["pay"] == {"N": "1234.50"}
    assert item["pay_text"] == {"N": "1234.5000"}
    assert item["named"] == {"BOOL": False}
    assert item["card"] == {
        "M": {"who": {"S": "Ada Byron"}, "ids": {"L": [{"N": "7"}, {"S": "xy"}]}}
    }


def test_a_template_of_one_null_column_has_no_attribute_and_a_null_key_is_an_error() -> None:
    rule = copy.deepcopy(RULE_A)
    rule["mapping-parameters"]["attribute-mappings"].append(_scalar("n", "${notes}"))
    shape = ItemShape(EMPLOYEE, _rule(rule))
    assert "n" not in shape.item(ROW)
    with pytest.raises(CodecError, match="cannot be empty") as caught:
        shape.item({**ROW, "dept": None})
    assert caught.value.column == "dept"


def test_without_a_mapping_the_primary_key_is_the_key() -> None:
    item = ItemShape(EMPLOYEE, None).item(ROW)
    assert item["emp_id"] == {"N": "7"} and "notes" not in item and len(item) == 6
    two = Table("s", "t", EMPLOYEE.columns, primary_key=("dept", "emp_id"))
    assert ItemShape(two, None).key == (KeyAttribute("dept", "S"), KeyAttribute("emp_id", "N"))


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ((), "no primary key.*partition-key-name"),
        (("dept", "emp_id", "hired"), "3 columns \\(dept, emp_id, hired\\).*object-mapping"),
    ],
)
def test_tables_that_need_a_mapping(key: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ItemShape(Table("s", "t", EMPLOYEE.columns, primary_key=key), None)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"exclude-columns": ["nope"]}, r"exclude-columns\[0\]: .*no column 'nope'"),
        (
            {"attribute-mappings": [_scalar("a", "${nope}")]},
            r"attribute-mappings\[0\]\.value: .*no column 'nope'",
        ),
        ({"partition-key-name": "nope"}, r"partition-key-name: .*neither a mapped"),
        (
            {"partition-key-name": "emp_id", "exclude-columns": ["emp_id"]},
            r"partition-key-name: .*is excluded",
        ),
        (
            {"partition-key-name": "b", "attribute-mappings": [_scalar("b", "x", "boolean")]},
            r"partition-key-name: .*key attribute 'b' is boolean",
        ),
    ],
)
def test_mapping_errors_found_with_the_table(params: dict[str, Any], message: str) -> None:
    rule = {**RULE_A, "mapping-parameters": params}
    with pytest.raises(ConfigError, match=message):
        ItemShape(EMPLOYEE, _rule(rule))


def test_key_from_a_partial_row_and_the_changes_of_an_update() -> None:
    shape = ItemShape(EMPLOYEE, _rule(RULE_B))
    assert shape.key_from({"emp_id": 7}) == {"pk": {"S": "EMP#7"}}
    assert shape.key_from({"dept": "x"}) is None
    after = {**ROW, "first_name": UNCHANGED, "last_name": None}
    sets, removes = shape.changes(after, UNCHANGED)
    assert sets[("_doc", "dept")] == {"S": "R&D"} and ("_doc", "first_name") not in sets
    assert removes == [("_doc", "last_name"), ("_doc", "notes")]


def test_an_item_over_400_kb_is_an_error_naming_its_largest_attribute() -> None:
    with pytest.raises(CodecError, match="409600") as caught:
        ItemShape(EMPLOYEE, None).item({**ROW, "notes": "x" * 409_600})
    assert caught.value.column == "notes"
