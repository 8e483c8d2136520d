"""The States Language's data flow: reference paths, ResultPath, payload templates and
intrinsic functions (values as the Step Functions documentation's examples give them)."""

from __future__ import annotations

from typing import Any

import pytest

from opendms.workflows.paths import PathError, apply_result_path, evaluate, read_path, render

DATA: dict[str, Any] = {
    "company": {"id": 7, "alias": "acme", "tables": ["orders", "items"]},
    "weird key": {"it's": 1},
    "n": 3,
}
CONTEXT = {"Execution": {"Id": "exec-1"}, "Map": {"Item": {"Index": 2}}}


def test_reference_paths_read_fields_indexes_and_the_context() -> None:
    assert read_path("$", DATA) is DATA
    assert read_path("$.company.tables[1]", DATA) == "items"
    assert read_path("$['weird key']['it\\'s']", DATA) == 1
    assert read_path("$$.Execution.Id", DATA, CONTEXT) == "exec-1"
    with pytest.raises(PathError) as caught:
        read_path("$.company.missing", DATA)
    assert caught.value.error == "States.Runtime" and "matches nothing" in caught.value.cause


def test_result_path_places_replaces_or_drops_the_result() -> None:
    assert apply_result_path("$.guid", {"a": 1}, "g") == {"a": 1, "guid": "g"}
    assert apply_result_path("$.out.rows", {"a": 1}, 5) == {"a": 1, "out": {"rows": 5}}
    assert apply_result_path("$", {"a": 1}, [1]) == [1]
    assert apply_result_path(None, {"a": 1}, "dropped") == {"a": 1}
    source = {"a": {"b": 1}}
    apply_result_path("$.a.c", source, 2)
    assert source == {"a": {"b": 1}}  # the input itself is not changed


def test_a_payload_template_takes_paths_and_functions() -> None:
    template = {
        "company.$": "$.company.id",
        "fixed": {"nested.$": "$.n", "list": [1, {"x.$": "$.company.alias"}]},
        "file.$": "States.Format('{}/{}.csv', $.company.alias, $.company.tables[0])",
    }
    assert render(template, DATA) == {
        "company": 7,
        "fixed": {"nested": 3, "list": [1, {"x": "acme"}]},
        "file": "acme/orders.csv",
    }


@pytest.mark.parametrize(
    ("call", "want"),
    [
        ("States.Format('Hello, {}! {} \\\\{\\\\}', 'world', $.n)", "Hello, world! 3 {}"),
        ("States.StringToJson('{\"a\": [1, 2]}')", {"a": [1, 2]}),
        ("States.JsonToString($.company.tables)", '["orders","items"]'),
        ("States.Array($.n, 'x', true, null, 1.5)", [3, "x", True, None, 1.5]),
        ("States.ArrayPartition(States.ArrayRange(1, 5, 1), 2)", [[1, 2], [3, 4], [5]]),
        ("States.ArrayContains($.company.tables, 'items')", True),
        ("States.ArrayRange(10, 4, -3)", [10, 7, 4]),
        ("States.ArrayGetItem($.company.tables, 1)", "items"),
        ("States.ArrayLength($.company.tables)", 2),
        ("States.ArrayUnique(States.Array(1, 2, 1, 'a', 'a'))", [1, 2, "a"]),
        ("States.Base64Encode('Data to encode')", "RGF0YSB0byBlbmNvZGU="),
        ("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')", "Data to encode"),
        (
            "States.Hash('input data', 'SHA-1')",
            "aaff4a450a104cd177d28d18d74485e8cae074b7",
        ),
        ("States.JsonMerge($.company, States.StringToJson('{\"id\": 8}'), false)", None),
        ("States.MathAdd($.n, -4)", -1),
        ("States.StringSplit('a,b;c', ',;')", ["a", "b", "c"]),
        ("States.ArrayGetItem(States.StringSplit('x/y.z', '/'), 1)", "y.z"),
    ],
)
def test_intrinsic_functions(call: str, want: Any) -> None:
    got = evaluate(call, DATA)
    if "JsonMerge" in call:
        want = {**DATA["company"], "id": 8}
    assert got == want


def test_uuid_and_random_are_what_they_say() -> None:
    first, second = evaluate("States.UUID()", DATA), evaluate("States.UUID()", DATA)
    assert len(first) == 36 and first != second
    assert all(1 <= evaluate("States.MathRandom(1, 3)", DATA) <= 3 for _ in range(20))
    seeded = [evaluate("States.MathRandom(1, 1000, 42)", DATA) for _ in range(2)]
    assert seeded[0] == seeded[1]


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ("States.Nope(1)", "no intrinsic function States.Nope"),
        ("States.Format('{} {}', 1)", "2 placeholders for 1 values"),
        ("States.ArrayGetItem($.company.tables, 5)", "ArrayGetItem"),
        ("States.MathAdd(1.5, 1)", "not a whole number"),
        ("States.Array(1", "expected , or )"),
        ("States.JsonMerge($.company, $.company, true)", "deep merge"),
    ],
)
def test_a_failing_function_is_an_intrinsic_failure(call: str, words: str) -> None:
    with pytest.raises(PathError) as caught:
        evaluate(call, DATA)
    assert caught.value.error == "States.IntrinsicFailure"
    assert words in caught.value.cause
