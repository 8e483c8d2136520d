"""Selection rules, wildcards, source filters and table settings."""

from __future__ import annotations

from typing import Any

import pytest

from opendms.endpoints.sqlutil import render_condition
from opendms.errors import ConfigError
from opendms.mapping import ParallelLoad, TableMappings, parse_table_mappings
from opendms.mapping.rowfilter import passes
from opendms.mapping.wildcards import Pattern
from opendms.model import Column, ColumnType, Filter, FilterGroup, Kind, Table, TableRef


def rule(
    rid: int, schema: str, table: str, action: str = "include", /, **extra: Any
) -> dict[str, Any]:
    return {
        "rule-type": "selection",
        "rule-id": str(rid),
        "rule-name": f"r{rid}",
        "object-locator": {"schema-name": schema, "table-name": table},
        "rule-action": action,
        **extra,
    }


def mappings(*rules: dict[str, Any]) -> TableMappings:
    return parse_table_mappings({"rules": list(rules)})


def refs(*names: str) -> list[TableRef]:
    return [TableRef(*n.split(".")) for n in names]


@pytest.mark.parametrize(
    ("pattern", "matching", "not_matching"),
    [
        ("%", ["", "a", "Orders_2024"], []),
        ("DMS%", ["DMS", "DMS_log", "DMSx"], ["xDMS", "dms_log"]),
        ("%_log", ["a_log", "xlog", "_log"], ["log", "a_lag"]),
        ("T_st", ["Test", "Tost", "T_st"], ["Teest", "Tst", "test"]),
        ("a[_]b", ["a_b"], ["axb", "a__b"]),
        ("a[_]%", ["a_", "a_bc"], ["ab", "xa_"]),
        ("[%]off", ["%off"], ["1off", "off"]),
        ("[ab]x", ["ax", "bx"], ["cx", "abx"]),
        ("[a-c]1", ["a1", "b1", "c1"], ["d1", "B1"]),
        ("t[1", ["t[1"], ["t1"]),
        ("a.b", ["a.b"], ["axb"]),
    ],
)
def test_wildcards(pattern: str, matching: list[str], not_matching: list[str]) -> None:
    compiled = Pattern(pattern)
    assert [compiled.matches(n) for n in matching] == [True] * len(matching)
    assert [compiled.matches(n) for n in not_matching] == [False] * len(not_matching)


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([rule(1, "%", "%")], ["hr.emp", "hr.DMS_log", "hr.a_b", "sales.axb", "Sales.emp"]),
        ([rule(1, "hr", "%")], ["hr.emp", "hr.DMS_log", "hr.a_b"]),
        ([rule(1, "%", "a_b")], ["hr.a_b", "sales.axb"]),
        ([rule(1, "%", "a[_]b")], ["hr.a_b"]),
        ([rule(1, "sales", "%")], ["sales.axb"]),  # case-sensitive: not Sales
        ([rule(1, "hr", "EMP")], []),
        # exclude beats include whatever the rule order
        ([rule(1, "hr", "%"), rule(2, "hr", "DMS%", "exclude")], ["hr.emp", "hr.a_b"]),
        ([rule(1, "hr", "DMS%", "exclude"), rule(2, "hr", "%")], ["hr.emp", "hr.a_b"]),
        # explicit: exact names only, `_` is literal
        ([rule(1, "hr", "a_b", "explicit")], ["hr.a_b"]),
        ([rule(1, "sales", "a_b", "explicit")], []),
        (
            [rule(1, "Sales", "emp", "explicit"), rule(2, "hr", "emp", "explicit")],
            ["hr.emp", "Sales.emp"],
        ),
        ([rule(1, "hr", "emp", "explicit"), rule(2, "%", "emp", "exclude")], []),
        ([rule(1, "%", "%", "exclude")], []),
    ],
)
def test_select(rules: list[dict[str, Any]], expected: list[str]) -> None:
    available = refs("hr.emp", "hr.DMS_log", "hr.a_b", "sales.axb", "Sales.emp")
    assert mappings(*rules).select(available) == refs(*expected)


def test_select_keeps_input_order_and_drops_duplicates() -> None:
    m = mappings(rule(1, "%", "%"))
    assert m.select(refs("b.z", "a.y", "b.z", "a.x")) == refs("b.z", "a.y", "a.x")


def test_without_selection_rules_nothing_is_selected() -> None:
    m = parse_table_mappings(
        {
            "rules": [
                {
                    "rule-type": "table-settings",
                    "rule-id": 1,
                    "rule-name": "1",
                    "object-locator": {"schema-name": "a", "table-name": "b"},
                    "parallel-load": {"type": "none"},
                }
            ]
        }
    )
    assert (m.has_selection, m.select(refs("a.b"))) == (False, [])
    assert mappings(rule(1, "x", "y")).has_selection is True


def test_table_type_is_recorded() -> None:
    r = rule(1, "hr", "v%")
    r["object-locator"]["table-type"] = "view"
    assert mappings(r).selections[0].table_type == "view"
    assert mappings(rule(1, "hr", "%")).selections[0].table_type == "table"


def one_filter(*conditions: dict[str, Any], column: str = "id") -> dict[str, Any]:
    return {"filter-type": "source", "column-name": column, "filter-conditions": list(conditions)}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"filter-operator": "eq", "value": "tech"}, Filter("id", "eq", ("tech",))),
        ({"filter-operator": "noteq", "value": "50"}, Filter("id", "noteq", ("50",))),
        ({"filter-operator": "gte", "value": 100}, Filter("id", "gte", ("100",))),
        ({"filter-operator": "lte", "value": 2.5}, Filter("id", "lte", ("2.5",))),
        ({"filter-operator": "lte", "value": "2002-01-01"}, Filter("id", "lte", ("2002-01-01",))),
        (
            {"filter-operator": "between", "start-value": "50", "end-value": 75},
            Filter("id", "between", ("50", "75")),
        ),
        (
            {"filter-operator": "notbetween", "start-value": "50", "end-value": "75"},
            Filter("id", "notbetween", ("50", "75")),
        ),
        ({"filter-operator": "ste", "value": "9"}, Filter("id", "lte", ("9",))),
        ({"filter-operator": "null"}, Filter("id", "null", ())),
        ({"filter-operator": "notnull", "value": None}, Filter("id", "notnull", ())),
        ({"filter-operator": "eq", "value": ""}, Filter("id", "eq", ("",))),
    ],
)
def test_filter_operators(condition: dict[str, Any], expected: Filter) -> None:
    m = mappings(rule(1, "hr", "emp", filters=[one_filter(condition)]))
    assert m.filters_for(TableRef("hr", "emp")) == (FilterGroup("id", (expected,)),)
    assert m.filters_for(TableRef("hr", "other")) == ()


def test_conditions_in_one_filter_are_ored_and_filters_anded() -> None:
    filters = [
        one_filter(
            {"filter-operator": "lte", "value": "10"},
            {"filter-operator": "between", "start-value": "50", "end-value": "75"},
        ),
        one_filter({"filter-operator": "eq", "value": "tech"}, column="dept"),
    ]
    m = mappings(rule(1, "hr", "emp", filters=filters))
    assert m.filters_for(TableRef("hr", "emp")) == (
        FilterGroup("id", (Filter("id", "lte", ("10",)), Filter("id", "between", ("50", "75")))),
        FilterGroup("dept", (Filter("dept", "eq", ("tech",)),)),
    )


def test_filters_of_all_matching_rules_are_anded() -> None:
    m = mappings(
        rule(1, "hr", "%", filters=[one_filter({"filter-operator": "notnull"})]),
        rule(
            2,
            "hr",
            "emp",
            "explicit",
            filters=[one_filter({"filter-operator": "gte", "value": "5"})],
        ),
    )
    assert m.filters_for(TableRef("hr", "emp")) == (
        FilterGroup("id", (Filter("id", "notnull"),)),
        FilterGroup("id", (Filter("id", "gte", ("5",)),)),
    )
    assert m.filters_for(TableRef("hr", "dept")) == (FilterGroup("id", (Filter("id", "notnull"),)),)


def test_plan_carries_filters_and_checks_their_columns() -> None:
    table = Table("hr", "emp", (Column("id", ColumnType(Kind.INT32)),))
    good = mappings(rule(1, "hr", "%", filters=[one_filter({"filter-operator": "null"})]))
    assert good.plan(table).filters == (FilterGroup("id", (Filter("id", "null"),)),)
    bad = mappings(
        rule(1, "hr", "%", filters=[one_filter({"filter-operator": "null"}, column="ID")])
    )
    with pytest.raises(ConfigError) as info:
        bad.plan(table)
    assert info.value.path == "$.rules[0].filters[0].column-name"
    assert "has no column 'ID'" in str(info.value)


def test_load_order_is_the_highest_of_the_selecting_rules() -> None:
    m = mappings(
        rule(1, "hr", "%", **{"load-order": 1}), rule(2, "hr", "emp", **{"load-order": "3"})
    )
    assert [m.load_order(r) for r in refs("hr.emp", "hr.dept", "x.y")] == [3, 1, 0]


def settings(rid: int, table: str, parallel: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule-type": "table-settings",
        "rule-id": rid,
        "rule-name": str(rid),
        "object-locator": {"schema-name": "HR", "table-name": table},
        "parallel-load": parallel,
    }


@pytest.mark.parametrize(
    ("parallel", "expected"),
    [
        (
            {
                "type": "ranges",
                "columns": ["SALES_NO", "REGION"],
                "boundaries": [["1000", "NORTH"], [3000, "WEST"]],
            },
            ParallelLoad("ranges", ("SALES_NO", "REGION"), (("1000", "NORTH"), ("3000", "WEST"))),
        ),
        ({"type": "partitions-auto"}, ParallelLoad("partitions-auto")),
        (
            {"type": "partitions-list", "partitions": ["ABCD", {"partition-name": "EFGH"}]},
            ParallelLoad("partitions-list", partitions=("ABCD", "EFGH")),
        ),
        ({"type": "none"}, ParallelLoad("none")),
    ],
)
def test_parallel_load(parallel: dict[str, Any], expected: ParallelLoad) -> None:
    m = mappings(rule(1, "%", "%"), settings(2, "SALES", parallel))
    assert m.parallel_load(TableRef("HR", "SALES")) == expected
    assert m.parallel_load(TableRef("HR", "ORDERS")) is None
    assert m.parallel_load(TableRef("HR", "sales")) is None


def test_lob_settings_are_validated_and_recorded() -> None:
    r = settings(2, "ITEMS", {"type": "none"})
    r["lob-settings"] = {"mode": "unlimited", "bulk-max-size": "100000"}
    lob = mappings(r).table_settings[0].lob_settings
    assert lob is not None and (lob.mode, lob.bulk_max_size) == ("unlimited", 100000)


def test_two_parallel_load_rules_for_one_table_are_an_error() -> None:
    m = mappings(
        settings(1, "SALES", {"type": "partitions-auto"}), settings(2, "SALES", {"type": "none"})
    )
    assert m.parallel_load(TableRef("HR", "SHIPS")) is None
    with pytest.raises(ConfigError) as info:
        m.parallel_load(TableRef("HR", "SALES"))
    assert info.value.path == "$.rules[1].parallel-load"
    assert "also set by $.rules[0]" in str(info.value)


def test_notbetween_holds_outside_the_range_and_never_for_null() -> None:
    table = Table("hr", "emp", (Column("id", ColumnType(Kind.INT64)),), ("id",))
    group = (FilterGroup("id", (Filter("id", "notbetween", ("50", "75")),)),)
    kept = [v for v in (None, 49, 50, 60, 75, 76) if passes(group, {"id": v}, table)]
    assert kept == [49, 76]
    sql = render_condition(group[0].conditions[0], lambda c: f'"{c}"', lambda v: f"'{v}'")
    assert sql == "\"id\" NOT BETWEEN '50' AND '75'"


def test_a_second_condition_beside_notbetween_is_refused() -> None:
    conds = (
        {"filter-operator": "notbetween", "start-value": "1", "end-value": "2"},
        {"filter-operator": "eq", "value": "5"},
    )
    with pytest.raises(ConfigError, match=r"negative operator \(notbetween\) must be the only"):
        mappings(rule(1, "hr", "emp", filters=[one_filter(*conds)]))


def _tag_rule(rid: int, schema: str, table: str, *tags: tuple[str, str]) -> dict[str, Any]:
    return {
        "rule-type": "post-processing",
        "rule-id": str(rid),
        "rule-name": str(rid),
        "rule-action": "add-tag",
        "object-locator": {"schema-name": schema, "table-name": table},
        "tag-set": [{"key": k, "value": v} for k, v in tags],
    }


def test_object_tags_exact_rule_wins_else_the_first_and_names_are_filled() -> None:
    m = mappings(
        rule(1, "%", "%"),
        _tag_rule(2, "%", "%", ("dw-schema", "${schema-name}"), ("t", "p_${table-name}")),
        _tag_rule(3, "aat", "ITEM", ("only", "this")),
        _tag_rule(4, "aat", "%", ("never", "used")),
    )
    assert m.object_tags("aat", "ITEM") == {"only": "this"}
    assert m.object_tags("aat", "SALE") == {"dw-schema": "aat", "t": "p_SALE"}
    assert m.object_tags("x", "y") == {"dw-schema": "x", "t": "p_y"}


def test_object_tags_are_at_most_ten_and_need_a_tag_set() -> None:
    many = [(f"k{i}", "v") for i in range(11)]
    with pytest.raises(ConfigError, match=r"\$\.rules\[1\]\.tag-set: an S3 object takes at most"):
        mappings(rule(1, "%", "%"), _tag_rule(2, "%", "%", *many))
    with pytest.raises(ConfigError, match=r"rule-action"):
        bad = {**_tag_rule(2, "%", "%", ("k", "v")), "rule-action": "add-label"}
        mappings(rule(1, "%", "%"), bad)
