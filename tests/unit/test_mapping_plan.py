"""Transformation rules applied to a described source table."""

from __future__ import annotations

from typing import Any

import pytest

from opendms.errors import ConfigError
from opendms.mapping import OutputColumn, TablePlan, parse_table_mappings
from opendms.model import Column, ColumnType, Index, Kind, Table

INT4 = ColumnType(Kind.INT32)
INT8 = ColumnType(Kind.INT64)
TEXT = ColumnType(Kind.STRING)

EMP = Table(
    "hr",
    "Employees",
    (
        Column("ID", INT4, nullable=False),
        Column("First_Name", TEXT),
        Column("Last_Name", TEXT),
        Column("Salary", INT8),
        Column("Notes", TEXT),
    ),
    primary_key=("ID",),
    indexes=(Index("ix_name", ("Last_Name", "First_Name")), Index("ix_notes", ("Notes",), True)),
    estimated_rows=42,
)


def tr(
    rid: int, action: str, target: str, column: str | None = None, /, **extra: Any
) -> dict[str, Any]:
    locator = {"schema-name": "hr"}
    if target != "schema":
        locator["table-name"] = extra.pop("table", "Employees")
    if column is not None:
        locator["column-name"] = column
    return {
        "rule-type": "transformation",
        "rule-id": rid,
        "rule-name": str(rid),
        "rule-action": action,
        "rule-target": target,
        "object-locator": locator,
        **extra,
    }


def plan(*rules: dict[str, Any], table: Table = EMP) -> TablePlan:
    return parse_table_mappings({"rules": list(rules)}).plan(table)


def names(p: TablePlan) -> list[str]:
    return [c.name for c in p.target.columns]


NAME_ACTIONS = [
    ("rename", {"value": "Staff"}, "Employees", "Staff"),
    ("convert-lowercase", {}, "Employees", "employees"),
    ("convert-uppercase", {}, "Employees", "EMPLOYEES"),
    ("add-prefix", {"value": "DMS_"}, "Employees", "DMS_Employees"),
    ("remove-prefix", {"value": "Emp"}, "Employees", "loyees"),
    ("remove-prefix", {"value": "X"}, "Employees", "Employees"),
    ("replace-prefix", {"value": "Staff", "old-value": "Emp"}, "Employees", "Staffloyees"),
    ("replace-prefix", {"value": "", "old-value": "Emp"}, "Employees", "loyees"),
    ("add-suffix", {"value": "_v1"}, "Employees", "Employees_v1"),
    ("remove-suffix", {"value": "ees"}, "Employees", "Employ"),
    ("replace-suffix", {"value": "EES", "old-value": "ees"}, "Employees", "EmployEES"),
    ("replace-suffix", {"value": "EES", "old-value": "x"}, "Employees", "Employees"),
]


@pytest.mark.parametrize(("action", "params", "before", "after"), NAME_ACTIONS)
def test_table_name_actions(action: str, params: dict[str, str], before: str, after: str) -> None:
    p = plan(tr(1, action, "table", **params))
    assert (p.target.schema, p.target.name) == ("hr", after)
    assert p.source is EMP


@pytest.mark.parametrize(("action", "params", "before", "after"), NAME_ACTIONS)
def test_schema_name_actions(action: str, params: dict[str, str], before: str, after: str) -> None:
    table = Table(before, "t", (Column("a", INT4),))
    rule = tr(1, action, "schema", **params)
    rule["object-locator"]["schema-name"] = "Emp%"
    assert plan(rule, table=table).target.schema == after


@pytest.mark.parametrize(("action", "params", "before", "after"), NAME_ACTIONS)
def test_column_name_actions(action: str, params: dict[str, str], before: str, after: str) -> None:
    table = Table(
        "hr", "Employees", (Column("ID", INT4), Column(before, TEXT)), primary_key=("ID",)
    )
    p = plan(tr(1, action, "column", "Emp%", **params), table=table)
    assert names(p) == ["ID", after]
    assert p.outputs[1] == OutputColumn(after, TEXT, before, None)
    assert p.read_columns == ("ID", before)


@pytest.mark.parametrize(
    ("ids", "expected"),
    [((2, 3), "DMS_employees"), ((3, 2), "dms_employees")],
)
def test_rules_apply_in_rule_id_order(ids: tuple[int, int], expected: str) -> None:
    lower, prefix = ids
    rules = [
        tr(prefix, "add-prefix", "table", value="DMS_"),
        tr(lower, "convert-lowercase", "table"),
    ]
    assert plan(*rules).target.name == expected


def test_later_rename_wins_and_locators_name_source_objects() -> None:
    p = plan(
        tr(5, "rename", "table", value="Second"),
        tr(4, "rename", "table", value="First"),
        tr(6, "add-suffix", "table", value="_x"),
        tr(7, "add-suffix", "table", value="_never", table="Second"),
    )
    assert p.target.name == "Second_x"


def test_column_rules_are_case_sensitive() -> None:
    p = plan(tr(1, "rename", "column", "first_name", value="fname"))
    assert names(p) == ["ID", "First_Name", "Last_Name", "Salary", "Notes"]


def test_schema_rule_leaves_other_schemas_alone() -> None:
    rule = tr(1, "rename", "schema", value="people")
    other = Table("sales", "Employees", (Column("a", INT4),))
    assert (plan(rule).target.schema, plan(rule, table=other).target.schema) == ("people", "sales")


def test_remove_column_with_wildcard_drops_columns_and_their_indexes() -> None:
    p = plan(tr(1, "remove-column", "column", "%_Name"))
    assert names(p) == ["ID", "Salary", "Notes"]
    assert p.read_columns == ("ID", "Salary", "Notes")
    assert p.target.indexes == (Index("ix_notes", ("Notes",), True),)
    assert p.target.primary_key == ("ID",)
    assert p.target.estimated_rows == 42


def test_include_column_keeps_only_included_columns() -> None:
    p = plan(
        tr(1, "include-column", "column", "ID"),
        tr(2, "include-column", "column", "Sal%"),
        tr(3, "rename", "column", "Notes", value="n"),
    )
    assert names(p) == ["ID", "Salary"]
    assert p.read_columns == ("ID", "Salary")
    assert p.target.indexes == ()


def test_removing_a_key_column_drops_the_primary_key() -> None:
    assert plan(tr(1, "remove-column", "column", "ID")).target.primary_key == ()


def test_renames_follow_into_primary_key_and_indexes() -> None:
    p = plan(
        tr(1, "rename", "column", "ID", value="emp_id"),
        tr(2, "convert-lowercase", "column", "%"),
    )
    assert names(p) == ["emp_id", "first_name", "last_name", "salary", "notes"]
    assert p.target.primary_key == ("emp_id",)
    assert p.target.indexes == (
        Index("ix_name", ("last_name", "first_name")),
        Index("ix_notes", ("notes",), True),
    )
    assert [o.source for o in p.outputs] == ["ID", "First_Name", "Last_Name", "Salary", "Notes"]
    assert p.target.columns[0].nullable is False


def test_define_primary_key_uses_source_names_and_follows_renames() -> None:
    p = plan(
        tr(
            1,
            "define-primary-key",
            "table",
            **{"primary-key-def": {"name": "pk", "columns": ["Last_Name", "First_Name"]}},
        ),
        tr(2, "rename", "column", "Last_Name", value="surname"),
    )
    assert p.target.primary_key == ("surname", "First_Name")


def test_define_primary_key_as_unique_index() -> None:
    pk_def = {"name": "ux_salary", "origin": "unique-index", "columns": ["Salary"]}
    p = plan(tr(1, "define-primary-key", "table", **{"primary-key-def": pk_def}))
    assert p.target.primary_key == ("ID",)
    assert p.target.indexes[-1] == Index("ux_salary", ("Salary",), unique=True)


def test_define_primary_key_on_an_added_column() -> None:
    p = plan(
        tr(
            1,
            "add-column",
            "column",
            value="k",
            expression="$ID * 10",
            **{"data-type": {"type": "int8"}},
        ),
        tr(
            2,
            "define-primary-key",
            "table",
            **{"primary-key-def": {"name": "pk", "columns": ["k"]}},
        ),
    )
    assert p.target.primary_key == ("k",)


@pytest.mark.parametrize(
    ("rules", "path", "fragment"),
    [
        (
            [
                tr(
                    1,
                    "define-primary-key",
                    "table",
                    **{"primary-key-def": {"name": "pk", "columns": ["ID", "Nope"]}},
                )
            ],
            "$.rules[0].primary-key-def.columns[1]",
            "key column 'Nope' does not exist",
        ),
        (
            [
                tr(1, "remove-column", "column", "Salary"),
                tr(
                    2,
                    "define-primary-key",
                    "table",
                    **{"primary-key-def": {"name": "pk", "columns": ["Salary"]}},
                ),
            ],
            "$.rules[1].primary-key-def.columns[0]",
            "key column 'Salary' is removed",
        ),
        (
            [tr(1, "rename", "column", "Notes", value="Salary")],
            "$.rules[0]",
            "two target columns would be named 'Salary'",
        ),
        (
            [tr(1, "remove-prefix", "column", "Notes", value="Notes")],
            "$.rules[0]",
            "remove-prefix leaves an empty name",
        ),
        (
            [tr(3, "add-column", "column", value="Notes", **{"data-type": {"type": "int4"}})],
            "$.rules[0]",
            "two target columns would be named 'Notes'",
        ),
        ([tr(1, "remove-column", "column", "%")], "$.rules[0]", "no column is left"),
        (
            [tr(1, "change-data-type", "column", "Salary", **{"data-type": {"type": "date"}})],
            "$.rules[0].data-type",
            "cannot convert",
        ),
        (
            [
                tr(
                    1,
                    "add-column",
                    "column",
                    value="x",
                    expression="$Nope + 1",
                    **{"data-type": {"type": "int4"}},
                )
            ],
            "$.rules[0].expression",
            "$Nope, which is not a column of the source table",
        ),
        (
            [
                tr(
                    1,
                    "add-column",
                    "column",
                    value="x",
                    expression="$AR_H_TIMESTAMPS",
                    **{"data-type": {"type": "datetime"}},
                )
            ],
            "$.rules[0].expression",
            "$AR_H_TIMESTAMPS is not a DMS header or metadata column",
        ),
        (
            [
                tr(
                    1,
                    "add-column",
                    "column",
                    value="x",
                    expression="operation_indicator('D', 'U')",
                    **{"data-type": {"type": "string"}},
                )
            ],
            "$.rules[0].expression",
            "wrong number of arguments to function operation_indicator()",
        ),
        (
            [
                tr(
                    1,
                    "add-column",
                    "column",
                    value="x",
                    expression="date($Notes,, '+1 day')",
                    **{"data-type": {"type": "date"}},
                )
            ],
            "$.rules[0].expression",
            "invalid expression",
        ),
        (
            [
                tr(
                    1,
                    "add-column",
                    "column",
                    value="x",
                    expression="'not a date'",
                    **{"data-type": {"type": "date"}},
                )
            ],
            "$.rules[0].expression",
            "invalid expression",
        ),
    ],
)
def test_plan_errors_name_the_rule(rules: list[dict[str, Any]], path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        plan(*rules)
    assert info.value.path == path
    assert str(info.value).startswith(f"table-mappings: {path}: ")
    assert fragment in str(info.value)


def test_swapping_two_column_names_is_allowed() -> None:
    p = plan(
        tr(1, "rename", "column", "First_Name", value="Last_Name"),
        tr(2, "rename", "column", "Last_Name", value="First_Name"),
    )
    assert [(o.name, o.source) for o in p.outputs[1:3]] == [
        ("Last_Name", "First_Name"),
        ("First_Name", "Last_Name"),
    ]


def test_change_data_type() -> None:
    dec = ColumnType(Kind.DECIMAL, precision=12, scale=2)
    p = plan(
        tr(
            1,
            "change-data-type",
            "column",
            "Salary",
            **{"data-type": {"type": "numeric", "precision": 12, "scale": 2}},
        )
    )
    assert p.target.column("Salary").type == dec
    assert p.outputs[3] == OutputColumn("Salary", dec, "Salary", None)
    assert p.source.column("Salary").type == INT8


def test_add_column_appends_and_reads_referenced_columns() -> None:
    p = plan(
        tr(1, "remove-column", "column", "%_Name"),
        tr(
            2,
            "add-column",
            "column",
            value="FULL_NAME",
            expression="$First_Name||' '||$Last_Name",
            **{"data-type": {"type": "string", "length": 50}},
        ),
        tr(
            3,
            "add-column",
            "column",
            value="loaded",
            **{"data-type": {"type": "datetime", "precision": 6}},
        ),
        tr(4, "convert-uppercase", "column", "%"),
    )
    assert names(p) == ["ID", "SALARY", "NOTES", "FULL_NAME", "loaded"]
    assert p.outputs[3:] == (
        OutputColumn(
            "FULL_NAME", ColumnType(Kind.STRING, length=50), None, "$First_Name||' '||$Last_Name"
        ),
        OutputColumn("loaded", ColumnType(Kind.TIMESTAMP, precision=6), None, None),
    )
    assert p.read_columns == ("ID", "First_Name", "Last_Name", "Salary", "Notes")
    assert p.target.indexes == (Index("ix_notes", ("NOTES",), True),)


def test_rules_for_other_tables_do_not_apply() -> None:
    p = plan(
        tr(1, "rename", "table", value="x", table="Dept"),
        tr(2, "remove-column", "column", "ID", table="Dept"),
    )
    assert (p.target.name, names(p)) == (
        "Employees",
        ["ID", "First_Name", "Last_Name", "Salary", "Notes"],
    )
    assert p.target == EMP
