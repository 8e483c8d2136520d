"""Choice rules against inputs: every comparison operator, the Path forms, the type
tests, And/Or/Not, and missing or mistyped variables (false, never an error)."""

from __future__ import annotations

from typing import Any

import pytest

from opendms.workflows.choice import choose, matches

DATA: dict[str, Any] = {
    "s": "beta",
    "n": 5,
    "f": 2.5,
    "b": True,
    "t": "2024-05-01T12:00:00Z",
    "none": None,
    "other": {"s": "alpha", "n": 5, "t": "2024-05-02T00:00:00+02:00"},
}


@pytest.mark.parametrize(
    ("rule", "want"),
    [
        ({"Variable": "$.s", "StringEquals": "beta"}, True),
        ({"Variable": "$.s", "StringLessThan": "gamma"}, True),
        ({"Variable": "$.s", "StringGreaterThan": "gamma"}, False),
        ({"Variable": "$.s", "StringLessThanEquals": "beta"}, True),
        ({"Variable": "$.s", "StringGreaterThanEquals": "beta"}, True),
        ({"Variable": "$.s", "StringEqualsPath": "$.other.s"}, False),
        ({"Variable": "$.s", "StringGreaterThanPath": "$.other.s"}, True),
        ({"Variable": "$.s", "StringMatches": "b*a"}, True),
        ({"Variable": "$.s", "StringMatches": "b\\*a"}, False),
        ({"Variable": "$.n", "NumericEquals": 5}, True),
        ({"Variable": "$.n", "NumericEquals": 5.0}, True),
        ({"Variable": "$.f", "NumericLessThan": 3}, True),
        ({"Variable": "$.f", "NumericGreaterThanEquals": 2.5}, True),
        ({"Variable": "$.n", "NumericEqualsPath": "$.other.n"}, True),
        ({"Variable": "$.n", "NumericLessThanEqualsPath": "$.f"}, False),
        ({"Variable": "$.b", "BooleanEquals": True}, True),
        ({"Variable": "$.b", "BooleanEqualsPath": "$.b"}, True),
        ({"Variable": "$.t", "TimestampEquals": "2024-05-01T14:00:00+02:00"}, True),
        ({"Variable": "$.t", "TimestampLessThan": "2024-05-02T00:00:00Z"}, True),
        ({"Variable": "$.t", "TimestampLessThanPath": "$.other.t"}, True),  # 12:00Z < 22:00Z
        ({"Variable": "$.none", "IsNull": True}, True),
        ({"Variable": "$.missing", "IsPresent": False}, True),
        ({"Variable": "$.n", "IsPresent": True}, True),
        ({"Variable": "$.f", "IsNumeric": True}, True),
        ({"Variable": "$.b", "IsNumeric": True}, False),  # a boolean is no number
        ({"Variable": "$.s", "IsString": True}, True),
        ({"Variable": "$.b", "IsBoolean": True}, True),
        ({"Variable": "$.t", "IsTimestamp": True}, True),
        ({"Variable": "$.s", "IsTimestamp": False}, True),
        # missing or mistyped: false, not an error
        ({"Variable": "$.missing", "StringEquals": "x"}, False),
        ({"Variable": "$.missing", "IsNull": True}, False),
        ({"Variable": "$.n", "StringEquals": "5"}, False),
        ({"Variable": "$.s", "NumericLessThan": 9}, False),
        ({"Variable": "$.b", "NumericEquals": 1}, False),
        ({"Variable": "$.s", "StringEqualsPath": "$.missing"}, False),
        ({"Variable": "$.s", "TimestampEquals": "beta"}, False),
    ],
)
def test_comparisons(rule: dict[str, Any], want: bool) -> None:
    assert matches(rule, DATA) is want


def test_and_or_not_and_the_first_matching_rule_wins() -> None:
    rules: list[dict[str, Any]] = [
        {
            "And": [
                {"Variable": "$.n", "NumericGreaterThan": 1},
                {"Not": {"Variable": "$.s", "StringEquals": "beta"}},
            ],
            "Next": "A",
        },
        {
            "Or": [
                {"Variable": "$.missing", "IsPresent": True},
                {"Variable": "$.b", "BooleanEquals": True},
            ],
            "Next": "B",
        },
        {"Variable": "$.n", "NumericEquals": 5, "Next": "C"},
    ]
    assert choose(rules, DATA) == "B"
    assert choose(rules, {**DATA, "s": "x"}) == "A"
    assert choose(rules[:1], DATA) is None
    assert (
        choose(
            [{"Variable": "$$.Map.Item.Index", "NumericEquals": 2, "Next": "D"}],
            {},
            {"Map": {"Item": {"Index": 2}}},
        )
        == "D"
    )
