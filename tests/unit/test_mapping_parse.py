"""Parsing DMS table mappings: accepted forms, data types, and every error path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opendms.errors import ConfigError
from opendms.mapping import parse_table_mappings
from opendms.model import TableRef

SELECT_ALL: dict[str, Any] = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "1",
    "object-locator": {"schema-name": "%", "table-name": "%"},
    "rule-action": "include",
}


def sel(**extra: Any) -> dict[str, Any]:
    rule = {**SELECT_ALL, "rule-id": "2", "rule-name": "2"}
    rule.update(extra)
    return rule


def tr(action: str, target: str, locator: dict[str, str], **extra: Any) -> dict[str, Any]:
    rule = {
        "rule-type": "transformation",
        "rule-id": "2",
        "rule-name": "2",
        "rule-action": action,
        "rule-target": target,
        "object-locator": locator,
    }
    rule.update(extra)
    return rule


def ts(parallel: Any = None, **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "rule-type": "table-settings",
        "rule-id": "2",
        "rule-name": "2",
        "object-locator": {"schema-name": "hr", "table-name": "t"},
    }
    if parallel is not None:
        rule["parallel-load"] = parallel
    rule.update(extra)
    return rule


def cond(**c: Any) -> dict[str, Any]:
    return {"filter-type": "source", "column-name": "id", "filter-conditions": [c]}


COL = {"schema-name": "hr", "table-name": "t", "column-name": "c"}
TAB = {"schema-name": "hr", "table-name": "t"}
INT = {"type": "int4"}

# (second rule, JSON path of the error, message fragment)
BAD_RULES: list[tuple[Any, str, str]] = [
    ("selection", "$.rules[1]", "expected a rule object"),
    ({"rule-id": "2"}, "$.rules[1].rule-type", "required field is missing"),
    (sel(**{"rule-type": "select"}), "$.rules[1].rule-type", "unknown rule-type 'select'"),
    (sel(**{"rule-color": "red"}), "$.rules[1].rule-color", "unknown key"),
    (sel(**{"rule-id": True}), "$.rules[1].rule-id", "expected an integer"),
    (sel(**{"rule-id": "two"}), "$.rules[1].rule-id", "expected an integer"),
    (sel(**{"rule-id": 1}), "$.rules[1].rule-id", "duplicate rule-id 1"),
    (sel(**{"rule-name": None}), "$.rules[1].rule-name", "required field is missing"),
    (sel(**{"rule-name": []}), "$.rules[1].rule-name", "expected a string"),
    (sel(**{"rule-action": "select"}), "$.rules[1].rule-action", "unknown rule-action"),
    (
        sel(**{"object-locator": {"table-name": "t"}}),
        "$.rules[1].object-locator.schema-name",
        "missing",
    ),
    (
        sel(**{"object-locator": {"schema-name": 5, "table-name": "t"}}),
        "$.rules[1].object-locator.schema-name",
        "expected a string, got a number",
    ),
    (
        sel(**{"object-locator": {"schema-name": "s", "table-name": "t", "x": 1}}),
        "$.rules[1].object-locator.x",
        "unknown key",
    ),
    (
        sel(
            **{
                "rule-action": "explicit",
                "object-locator": {"schema-name": "s", "table-name": "t%"},
            }
        ),
        "$.rules[1].object-locator.table-name",
        "wildcards are not allowed in an explicit rule",
    ),
    (
        sel(**{"object-locator": {"schema-name": "s", "table-name": "t", "table-type": "tab"}}),
        "$.rules[1].object-locator.table-type",
        "unknown table-type",
    ),
    (sel(**{"load-order": "first"}), "$.rules[1].load-order", "expected an integer"),
    (sel(filters={}), "$.rules[1].filters", "expected an array"),
    (
        sel(filters=[cond(**{"filter-operator": "like", "value": "x"})]),
        "$.rules[1].filters[0].filter-conditions[0].filter-operator",
        "unknown filter-operator 'like'",
    ),
    (
        sel(filters=[cond(**{"filter-operator": "between", "start-value": "1"})]),
        "$.rules[1].filters[0].filter-conditions[0].end-value",
        "needs 'end-value'",
    ),
    (
        sel(filters=[cond(**{"filter-operator": "between", "end-value": "1"})]),
        "$.rules[1].filters[0].filter-conditions[0].start-value",
        "needs 'start-value'",
    ),
    (
        sel(filters=[cond(**{"filter-operator": "eq"})]),
        "$.rules[1].filters[0].filter-conditions[0].value",
        "needs 'value'",
    ),
    (
        sel(filters=[cond(**{"filter-operator": "null", "value": "x"})]),
        "$.rules[1].filters[0].filter-conditions[0].value",
        "not used by filter-operator 'null'",
    ),
    (
        sel(filters=[cond(**{"filter-operator": "eq", "value": {"a": 1}})]),
        "$.rules[1].filters[0].filter-conditions[0].value",
        "expected a string or a number",
    ),
    (
        sel(filters=[{**cond(**{"filter-operator": "null"}), "filter-type": "target"}]),
        "$.rules[1].filters[0].filter-type",
        "unknown filter-type",
    ),
    (
        sel(filters=[{"filter-type": "source", "column-name": "c", "filter-conditions": []}]),
        "$.rules[1].filters[0].filter-conditions",
        "non-empty",
    ),
    (
        sel(filters=[{"filter-type": "source", "column-name": "c", "filter-conditions": [{}]}]),
        "$.rules[1].filters[0].filter-conditions[0].filter-operator",
        "missing",
    ),
    (
        sel(
            filters=[
                {
                    "filter-type": "source",
                    "column-name": "c",
                    "filter-conditions": [
                        {"filter-operator": "eq", "value": "1"},
                        {"filter-operator": "noteq", "value": "2"},
                    ],
                }
            ]
        ),
        "$.rules[1].filters[0].filter-conditions[1].filter-operator",
        "negative operator",
    ),
    (
        sel(**{"rule-action": "exclude"}, filters=[cond(**{"filter-operator": "null"})]),
        "$.rules[1].filters",
        "only to include and explicit",
    ),
    (
        sel(filters=[{**cond(**{"filter-operator": "null"}), "col": 1}]),
        "$.rules[1].filters[0].col",
        "unknown key",
    ),
    (tr("rename", "view", TAB, value="x"), "$.rules[1].rule-target", "unknown rule-target 'view'"),
    (
        tr("add-prefix", "table-tablespace", TAB, value="x"),
        "$.rules[1].rule-action",
        "does not apply to rule-target 'table-tablespace'",
    ),
    (tr("drop", "table", TAB), "$.rules[1].rule-action", "unknown rule-action 'drop'"),
    (
        tr("add-before-image-columns", "column", TAB),
        "$.rules[1].before-image-def",
        "needs 'before-image-def'",
    ),
    (tr("remove-column", "table", TAB), "$.rules[1].rule-action", "does not apply to rule-target"),
    (tr("rename", "table", TAB), "$.rules[1].value", "needs 'value'"),
    (tr("rename", "table", TAB, value=""), "$.rules[1].value", "non-empty"),
    (tr("rename", "table", TAB, value=7), "$.rules[1].value", "expected a string"),
    (tr("replace-prefix", "table", TAB, value="a"), "$.rules[1].old-value", "needs 'old-value'"),
    (
        tr("rename", "table", TAB, value="a", **{"old-value": "b"}),
        "$.rules[1].old-value",
        "not used",
    ),
    (tr("convert-lowercase", "table", TAB, value="a"), "$.rules[1].value", "not used"),
    (tr("rename", "table", TAB, value="a", expression="1"), "$.rules[1].expression", "not used"),
    (tr("rename", "column", TAB, value="x"), "$.rules[1].object-locator.column-name", "required"),
    (tr("rename", "schema", TAB, value="x"), "$.rules[1].object-locator.table-name", "not used"),
    (
        tr("rename", "table", {"schema-name": "hr"}, value="x"),
        "$.rules[1].object-locator.table-name",
        "required",
    ),
    (
        tr("add-column", "column", COL, value="x", **{"data-type": INT}),
        "$.rules[1].object-locator.column-name",
        "not used",
    ),
    (
        tr("remove-column", "column", {**COL, "data-type": "int8"}),
        "$.rules[1].object-locator.data-type",
        "not supported",
    ),
    (tr("add-column", "column", TAB, value="x"), "$.rules[1].data-type", "needs 'data-type'"),
    (tr("change-data-type", "column", COL), "$.rules[1].data-type", "needs 'data-type'"),
    (
        tr("change-data-type", "column", COL, **{"data-type": {"type": "int16"}}),
        "$.rules[1].data-type.type",
        "unknown data type 'int16'",
    ),
    (
        tr("change-data-type", "column", COL, **{"data-type": {"type": "int4", "length": 4}}),
        "$.rules[1].data-type.length",
        "not a parameter of DMS type 'int4'",
    ),
    (
        tr("change-data-type", "column", COL, **{"data-type": {"type": "string", "length": 0}}),
        "$.rules[1].data-type.length",
        "expected an integer >= 1",
    ),
    (
        tr(
            "change-data-type",
            "column",
            COL,
            **{"data-type": {"type": "numeric", "precision": 4, "scale": 6}},
        ),
        "$.rules[1].data-type.scale",
        "exceeds precision",
    ),
    (
        tr("change-data-type", "column", COL, **{"data-type": {"type": "numeric", "scale": 2}}),
        "$.rules[1].data-type.scale",
        "needs 'precision'",
    ),
    (
        tr("change-data-type", "column", COL, **{"data-type": {"type": "int4", "size": 2}}),
        "$.rules[1].data-type.size",
        "unknown key",
    ),
    (
        tr("define-primary-key", "table", TAB),
        "$.rules[1].primary-key-def",
        "needs 'primary-key-def'",
    ),
    (
        tr("define-primary-key", "table", TAB, **{"primary-key-def": {"name": "pk"}}),
        "$.rules[1].primary-key-def.columns",
        "missing",
    ),
    (
        tr(
            "define-primary-key",
            "table",
            TAB,
            **{"primary-key-def": {"name": "pk", "columns": ["a", "a"]}},
        ),
        "$.rules[1].primary-key-def.columns[1]",
        "listed twice",
    ),
    (
        tr(
            "define-primary-key",
            "table",
            TAB,
            **{"primary-key-def": {"name": "pk", "columns": ["a"], "origin": "index"}},
        ),
        "$.rules[1].primary-key-def.origin",
        "unknown origin",
    ),
    (
        tr("add-column", "column", TAB, value="x", expression="$a +", **{"data-type": INT}),
        "$.rules[1].expression",
        "invalid expression",
    ),
    (
        tr("add-column", "column", TAB, value="x", expression="sum($a)", **{"data-type": INT}),
        "$.rules[1].expression",
        "aggregate",
    ),
    (
        tr("add-column", "column", TAB, value="x", expression="1, 2", **{"data-type": INT}),
        "$.rules[1].expression",
        "single expression",
    ),
    (
        tr("add-column", "column", TAB, value="x", expression="(SELECT 1)", **{"data-type": INT}),
        "$.rules[1].expression",
        "subqueries",
    ),
    (ts({"type": "hash"}), "$.rules[1].parallel-load.type", "unknown parallel-load type 'hash'"),
    (ts({"type": "subpartitions-auto"}), "$.rules[1].parallel-load.type", "not supported"),
    (
        ts({"type": "ranges", "columns": ["a"]}),
        "$.rules[1].parallel-load.boundaries",
        "needs 'boundaries'",
    ),
    (
        ts({"type": "ranges", "boundaries": [["1"]]}),
        "$.rules[1].parallel-load.columns",
        "needs 'columns'",
    ),
    (
        ts({"type": "ranges", "columns": ["a", "b"], "boundaries": [["1", "x"], ["2"]]}),
        "$.rules[1].parallel-load.boundaries[1]",
        "has 1 values for 2 columns",
    ),
    (
        ts({"type": "ranges", "columns": ["a"], "boundaries": ["1"]}),
        "$.rules[1].parallel-load.boundaries[0]",
        "expected an array",
    ),
    (
        ts({"type": "partitions-list", "partitions": [{"name": "p1"}]}),
        "$.rules[1].parallel-load.partitions[0].name",
        "unknown key",
    ),
    (ts({"type": "partitions-list"}), "$.rules[1].parallel-load.partitions", "needs 'partitions'"),
    (
        ts({"type": "partitions-auto", "columns": ["a"]}),
        "$.rules[1].parallel-load.columns",
        "not used",
    ),
    (
        ts({"type": "partitions-list", "partitions": ["p"], "subpartitions": ["s"]}),
        "$.rules[1].parallel-load.subpartitions",
        "not supported",
    ),
    (ts(), "$.rules[1]", "needs 'parallel-load' or 'lob-settings'"),
    (ts(**{"lob-settings": {"mode": "full"}}), "$.rules[1].lob-settings.mode", "unknown LOB mode"),
    (ts({"type": "none"}, **{"rule-action": "include"}), "$.rules[1].rule-action", "unknown key"),
]


@pytest.mark.parametrize(("rule", "path", "fragment"), BAD_RULES)
def test_malformed_rule_names_its_json_path(rule: Any, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_table_mappings({"rules": [SELECT_ALL, rule]})
    assert info.value.path == path
    assert info.value.where == "table-mappings"
    assert f"table-mappings: {path}: " in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("document", "path", "fragment"),
    [
        ({"rules": [], "version": 1}, "$.version", "unknown key"),
        ({}, "$.rules", "required field is missing"),
        ({"rules": {}}, "$.rules", "expected an array"),
        ("[1]", "$[0]", "expected a rule object"),
        ('{"rules": [], "rules": [{}]}', "$.rules", "key given more than once"),
        (
            '{"rules": [{"rule-type": "selection", "rule-type": "transformation"}]}',
            "$.rules[0].rule-type",
            "key given more than once",
        ),
    ],
)
def test_malformed_document_names_its_json_path(document: Any, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_table_mappings(document, where="task.json")
    assert info.value.path == path
    assert f"task.json: {path}: {fragment}" in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{"rules": [\n  {"rule-type": }\n]}', 2, 17),
        ('{"rules": [}', 1, 12),
        ("", 1, 1),
    ],
)
def test_malformed_json_names_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_table_mappings(text)
    assert f"line {line}, column {column}" in str(info.value)


def test_bytes_that_are_not_utf8_are_rejected() -> None:
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_table_mappings(b'{"rules": ["\xff"]}')


def test_dms_console_output_is_accepted_verbatim() -> None:
    text = json.dumps(
        {
            "rules": [
                {**SELECT_ALL, "rule-id": 101, "rule-name": 101, "filters": [], "load-order": "2"},
                {
                    "rule-type": "transformation",
                    "rule-id": "102",
                    "rule-name": "lower",
                    "rule-target": "table",
                    "object-locator": {"schema-name": "%", "table-name": "%"},
                    "rule-action": "convert-lowercase",
                    "value": None,
                    "old-value": None,
                },
            ]
        }
    ).encode("utf-8-sig")
    mappings = parse_table_mappings(text)
    assert [r.rule_id for r in mappings.rules] == [101, 102]
    assert [r.name for r in mappings.rules] == ["101", "lower"]
    assert mappings.load_order(TableRef("a", "b")) == 2


def test_bare_rules_array_is_accepted() -> None:
    mappings = parse_table_mappings([SELECT_ALL])
    assert mappings.select([TableRef("s", "t")]) == [TableRef("s", "t")]
