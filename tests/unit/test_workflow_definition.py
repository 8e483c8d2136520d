"""Amazon States Language definitions read and checked: seed 003's machines, its second
definition's missing comma by line, and one clear error per kind of invalid ASL."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from opendms.errors import ConfigError
from opendms.workflows.definition import load, parse

RETRY = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}
SEED_003 = {
    "Comment": "State machine to populate databases for reports.",
    "StartAt": "MySql To S3 Files",
    "States": {
        "MySql To S3 Files": {
            "Type": "Task",
            "Resource": "ARN",
            "ResultPath": "$.guid",
            "Next": "S3 Data To Mysql",
            "Retry": [RETRY],
        },
        "S3 Data To Mysql": {
            "Type": "Task",
            "Resource": "ARN",
            "InputPath": "$.guid",
            "End": True,
            "Retry": [RETRY],
        },
    },
}


def test_seed_003_machine_reads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "machine.json"
    path.write_text(json.dumps(SEED_003, indent=1))
    machine = load(path)
    assert machine.start_at == "MySql To S3 Files"
    assert list(machine.states) == ["MySql To S3 Files", "S3 Data To Mysql"]
    assert machine.states["S3 Data To Mysql"]["Retry"] == [RETRY]
    assert machine.comment.startswith("State machine")


def test_a_missing_comma_is_named_by_line() -> None:
    """Seed 003's "Parallel Machines" definition: no comma after its Comment line."""
    text = (
        "{\n"
        '"Comment": "State machine to populate databases for reports."\n'
        '"StartAt": "MySql To S3 Files",\n'
        '"States": {}\n'
        "}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse(text, "parallel.json")
    message = str(caught.value)
    assert message.startswith("parallel.json: not valid JSON: Expecting ',' delimiter")
    assert "line 3, column 1" in message
    assert "comma missing at the end of line 2" in message


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(SEED_003)
    change(data)
    return data


def _first(data: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = data["States"]["MySql To S3 Files"]
    return state


CASES = [
    (lambda d: d.update(StartAt="Nope"), "$.StartAt", "no state is named 'Nope'"),
    (lambda d: d.update(States={}), "$.States", "one or more states"),
    (lambda d: d.update(Extra=1), "$.Extra", "not a field of a state machine"),
    (lambda d: _first(d).update(Next="Gone"), "['MySql To S3 Files'].Next", "no state 'Gone'"),
    (lambda d: _first(d).update(End=True), "['MySql To S3 Files']", "(both given)"),
    (lambda d: _first(d).update(Type="Lambda"), ".Type", "one of Task, Pass, Choice"),
    (lambda d: _first(d).pop("Resource"), ".Resource", "required"),
    (lambda d: _first(d).update(Seconds=3), ".Seconds", "not a field of a Task state"),
    (
        lambda d: _first(d).update(TimeoutSeconds=5, HeartbeatSeconds=5),
        ".HeartbeatSeconds",
        "less than TimeoutSeconds",
    ),
    (
        lambda d: _first(d)["Retry"][0].update(ErrorEquals=["States.ALL", "X"]),
        ".Retry[0].ErrorEquals",
        "States.ALL must be the only",
    ),
    (lambda d: _first(d)["Retry"][0].update(BackoffRate=0.5), ".Retry[0].BackoffRate", "1.0"),
    (lambda d: _first(d)["Retry"][0].update(Foo=1), ".Retry[0].Foo", "not a Retry field"),
    (lambda d: _first(d).update(Retry={}), ".Retry", "a list of objects"),
    (
        lambda d: _first(d).update(Catch=[{"ErrorEquals": ["E"], "Next": "Nowhere"}]),
        ".Catch[0].Next",
        "no state 'Nowhere'",
    ),
    (lambda d: _first(d).update(ResultPath="guid"), ".ResultPath", "starting with $"),
]


@pytest.mark.parametrize(("change", "path", "words"), CASES)
def test_invalid_asl_is_one_error_at_its_json_path(change: Any, path: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(json.dumps(_broken(change)), "m.json")
    assert caught.value.where == "m.json"
    assert caught.value.path.endswith(path), caught.value.path
    assert words in str(caught.value)


def _machine(**states: Any) -> str:
    return json.dumps({"StartAt": next(iter(states)), "States": states})


def test_every_state_type_checks_its_own_fields() -> None:
    done = {"Type": "Succeed"}
    valid = _machine(
        Pick={
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.n", "NumericGreaterThan": 1},
                        {"Not": {"Variable": "$.s", "StringEquals": "x"}},
                    ],
                    "Next": "Fan",
                }
            ],
            "Default": "Nap",
        },
        Fan={
            "Type": "Parallel",
            "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}],
            "Next": "Each",
        },
        Each={
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemProcessor": {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}},
            "Next": "Nap",
        },
        Nap={"Type": "Wait", "Seconds": 1, "Next": "Done"},
        Done=done,
        Oops={"Type": "Fail", "Error": "E", "Cause": "c"},
    )
    assert list(parse(valid).states) == ["Pick", "Fan", "Each", "Nap", "Done", "Oops"]
    bad = [
        (_machine(W={"Type": "Wait", "Seconds": 1, "Timestamp": "t", "End": True}), "exactly one"),
        (_machine(C={"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": True}]}), "Next"),
        (
            _machine(
                C={"Type": "Choice", "Choices": [{"Next": "C", "Variable": "a", "IsNull": 1}]}
            ),
            "starting with $",
        ),
        (_machine(S={"Type": "Succeed", "Next": "S"}), "not a field of a Succeed state"),
        (
            _machine(
                P={
                    "Type": "Parallel",
                    "End": True,
                    "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "P"}}}],
                }
            ),
            "Branches[0].States.A.Next",  # a branch cannot leave for the outer machine
        ),
        (_machine(M={"Type": "Map", "End": True}), "ItemProcessor"),
    ]
    for text, words in bad:
        with pytest.raises(ConfigError) as caught:
            parse(text)
        assert words in str(caught.value), str(caught.value)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read the definition"):
        load(tmp_path / "missing.json")
