"""State machines run in process: every state type, the data flow between states, Retry
(counts, back-off, MaxDelaySeconds), Catch, a Task timeout, a failing Map item and a
failing Parallel branch, and the history of events."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from opendms.workflows.definition import parse
from opendms.workflows.run import Execution, MemoryJournal, StatesError


class Resources:
    """Task resources for the tests: ``flaky`` fails its first ``fail`` calls,
    ``double`` doubles ``$.n``, ``slow`` sleeps, ``boom`` always raises."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.calls = fail, list[tuple[str, Any]]()

    def __call__(self, resource: str, payload: Any) -> Any:
        self.calls.append((resource, payload))
        if resource == "flaky":
            if sum(1 for r, _ in self.calls if r == "flaky") <= self.fail:
                raise ConnectionError("not yet")
            return {"rows": 3}
        if resource == "double":
            return payload["n"] * 2
        if resource == "slow":
            time.sleep(2)
            return "late"
        raise ValueError(f"boom on {payload}")


def _run(states: dict[str, Any], data: Any, resources: Any = None, **kw: Any) -> Any:
    text = json.dumps({"StartAt": next(iter(states)), "States": states})
    waits: list[float] = []
    events: list[dict[str, Any]] = []
    execution = Execution(
        parse(text),
        resources if resources is not None else Resources(),
        events.append,
        waits.append,
        **kw,
    )
    try:
        return execution.run(data), waits, events
    except StatesError as exc:
        return exc, waits, events


def test_pass_choice_wait_succeed_with_the_data_flow() -> None:
    states = {
        "Start": {
            "Type": "Pass",
            "Parameters": {"n.$": "$.input.n", "label.$": "States.Format('n={}', $.input.n)"},
            "ResultPath": "$.made",
            "Next": "Pick",
        },
        "Pick": {
            "Type": "Choice",
            "InputPath": "$.made",
            "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"}],
            "Default": "Nap",
        },
        "Big": {"Type": "Fail", "Error": "TooBig"},
        "Nap": {"Type": "Wait", "SecondsPath": "$.n", "Next": "Done"},
        "Done": {"Type": "Succeed", "OutputPath": "$.label"},
    }
    out, waits, events = _run(states, {"input": {"n": 4}})
    assert out == "n=4" and waits == [4.0]
    entered = [e["state"] for e in events if e["type"] == "StateEntered"]
    assert entered == ["Start", "Pick", "Nap", "Done"]
    failed, _, events = _run(states, {"input": {"n": 40}})
    assert isinstance(failed, StatesError) and failed.error == "TooBig"
    assert events[-1]["type"] == "ExecutionFailed"


def test_task_retries_with_back_off_then_succeeds() -> None:
    retry = {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 3}
    states = {
        "Load": {
            "Type": "Task",
            "Resource": "flaky",
            "Retry": [{**retry, "BackoffRate": 2, "MaxDelaySeconds": 3}],
            "ResultSelector": {"loaded.$": "$.rows"},
            "ResultPath": "$.result",
            "End": True,
        }
    }
    resources = Resources(fail=3)
    out, waits, events = _run(states, {"company": 7}, resources)
    assert out == {"company": 7, "result": {"loaded": 3}}
    assert waits == [1.0, 2.0, 3.0]  # 1, 2, 4 capped at MaxDelaySeconds 3
    assert [e["type"] for e in events].count("StateRetried") == 3
    failed, waits, _ = _run(states, {}, Resources(fail=4))
    assert isinstance(failed, StatesError) and failed.error == "ConnectionError"
    assert len(waits) == 3  # MaxAttempts more attempts, then the error stands


def test_retriers_match_by_name_and_catch_takes_the_rest() -> None:
    states = {
        "Work": {
            "Type": "Task",
            "Resource": "boom",
            "Retry": [{"ErrorEquals": ["ConnectionError"], "MaxAttempts": 5}],
            "Catch": [
                {"ErrorEquals": ["States.Timeout"], "Next": "Never"},
                {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Mop"},
            ],
            "End": True,
        },
        "Never": {"Type": "Fail"},
        "Mop": {"Type": "Pass", "End": True},
    }
    out, waits, _ = _run(states, {"id": 1})
    assert waits == []  # a ValueError is no ConnectionError: not retried
    assert out == {"id": 1, "error": {"Error": "ValueError", "Cause": "boom on {'id': 1}"}}


def test_a_task_past_its_timeout_is_a_states_timeout() -> None:
    states = {"Slow": {"Type": "Task", "Resource": "slow", "TimeoutSeconds": 1, "End": True}}
    began = time.monotonic()
    failed, _, _ = _run(states, {})
    assert isinstance(failed, StatesError) and failed.error == "States.Timeout"
    assert time.monotonic() - began < 1.9


def test_parallel_and_map_give_their_results_in_order() -> None:
    double = {"StartAt": "D", "States": {"D": {"Type": "Task", "Resource": "double", "End": True}}}
    states = {
        "Both": {
            "Type": "Parallel",
            "Branches": [double, {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}],
            "ResultPath": "$.both",
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemSelector": {"n.$": "$$.Map.Item.Value", "at.$": "$$.Map.Item.Index"},
            "MaxConcurrency": 2,
            "ItemProcessor": double,
            "ResultPath": "$.doubled",
            "End": True,
        },
    }
    out, _, _ = _run(states, {"n": 5, "items": [1, 2, 3]})
    assert out["both"] == [10, {"n": 5, "items": [1, 2, 3]}]
    assert out["doubled"] == [2, 4, 6]


def test_a_failing_map_item_or_branch_fails_the_state_and_can_be_caught() -> None:
    item = {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "boom", "End": True}}}
    states = {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": item,
            "Catch": [{"ErrorEquals": ["ValueError"], "ResultPath": "$.failed", "Next": "Done"}],
            "End": True,
        },
        "Done": {"Type": "Succeed"},
    }
    out, _, _ = _run(states, {"items": [1, 2]})
    assert out["items"] == [1, 2] and out["failed"]["Error"] == "ValueError"
    branch = {"Type": "Parallel", "Branches": [item], "End": True}
    failed, _, _ = _run({"Both": branch}, {})
    assert isinstance(failed, StatesError) and failed.error == "ValueError"


def test_a_path_that_matches_nothing_is_never_retried_or_caught() -> None:
    states = {
        "T": {
            "Type": "Task",
            "Resource": "double",
            "InputPath": "$.missing",
            "Retry": [{"ErrorEquals": ["States.ALL"]}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "T"}],
            "End": True,
        }
    }
    failed, waits, _ = _run(states, {})
    assert isinstance(failed, StatesError) and failed.error == "States.Runtime"
    assert waits == []


def test_python_resources_are_called_with_the_payload() -> None:
    from opendms.workflows.run import _default_resources

    states = {"T": {"Type": "Task", "Resource": "python:json:dumps", "End": True}}
    out, _, _ = _run(states, {"a": 1}, resources=_default_resources)
    assert out == '{"a": 1}'


@pytest.mark.parametrize("resource", ["python:nosuch.mod:fn", "opendms:nothing"])
def test_an_unknown_resource_is_a_runtime_error(resource: str) -> None:
    from opendms.workflows.run import _default_resources

    states = {"T": {"Type": "Task", "Resource": resource, "End": True}}
    failed, _, _ = _run(states, {}, resources=_default_resources)
    assert isinstance(failed, StatesError) and failed.error == "States.Runtime"


class Killed(BaseException):
    """Stands for the process dying mid-call (no Catch sees it)."""


def _durable_machine() -> Any:
    item = {
        "StartAt": "Square",
        "States": {"Square": {"Type": "Task", "Resource": "sq", "End": True}},
    }
    return parse(
        json.dumps(
            {
                "StartAt": "First",
                "States": {
                    "First": {"Type": "Task", "Resource": "first", "Next": "Loop"},
                    "Loop": {
                        "Type": "Choice",
                        "Choices": [{"Variable": "$.n", "NumericLessThan": 3, "Next": "Bump"}],
                        "Default": "Each",
                    },
                    "Bump": {"Type": "Task", "Resource": "bump", "Next": "Loop"},
                    "Each": {
                        "Type": "Map",
                        "ItemsPath": "$.items",
                        "MaxConcurrency": 1,
                        "ItemProcessor": item,
                        "ResultPath": "$.squares",
                        "Next": "Wait",
                    },
                    "Wait": {"Type": "Wait", "Seconds": 30, "End": True},
                },
            }
        )
    )


def _durable_resources(calls: list[str], kill_at: int | None) -> Any:
    def call(resource: str, payload: Any) -> Any:
        calls.append(f"{resource} {json.dumps(payload, sort_keys=True)}")
        if kill_at is not None and len(calls) == kill_at:
            raise Killed
        if resource == "first":
            return {"n": 0, "items": [1, 2, 3]}
        if resource == "bump":
            return {**payload, "n": payload["n"] + 1}
        return payload * payload

    return call


@pytest.mark.parametrize("kill_at", range(1, 8))
def test_a_resumed_execution_replays_what_it_finished(kill_at: int) -> None:
    """Killed in its ``kill_at``-th Task call, then run again over the same journal: each
    call before the kill happened once, the killed one is made again, and the output is
    the uninterrupted run's."""
    machine = _durable_machine()
    whole: list[str] = []
    expected = Execution(machine, _durable_resources(whole, None), sleep=lambda s: None).run({})
    assert expected == {"n": 3, "items": [1, 2, 3], "squares": [1, 4, 9]}
    assert len(whole) == 7  # first, bump x3, square x3

    journal = MemoryJournal()
    calls: list[str] = []
    with pytest.raises(Killed):
        Execution(machine, _durable_resources(calls, kill_at), journal=journal).run({})
    waits: list[float] = []
    again = Execution(machine, _durable_resources(calls, None), sleep=waits.append, journal=journal)
    assert again.run({}, resumed=True) == expected
    assert calls == whole[:kill_at] + whole[kill_at - 1 :]
    assert waits == [30.0]


def test_a_resumed_wait_sleeps_only_what_is_left_and_retries_are_replayed() -> None:
    machine = parse(
        json.dumps(
            {
                "StartAt": "Flaky",
                "States": {
                    "Flaky": {
                        "Type": "Task",
                        "Resource": "flaky",
                        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5}],
                        "Next": "Wait",
                    },
                    "Wait": {"Type": "Wait", "Seconds": 100, "End": True},
                },
            }
        )
    )
    calls: list[int] = []

    def flaky(resource: str, payload: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("not yet")
        return {"ok": True}

    journal = MemoryJournal()

    def die(seconds: float) -> None:
        if seconds == 100:
            raise Killed

    with pytest.raises(Killed):
        Execution(machine, flaky, sleep=die, journal=journal).run({})
    waits: list[float] = []
    events: list[dict[str, Any]] = []
    out = Execution(machine, flaky, events.append, waits.append, journal=journal).run(
        {}, resumed=True
    )
    assert out == {"ok": True} and len(calls) == 2  # the failed and the good attempt only
    assert len(waits) == 1 and 99 < waits[0] <= 100  # the Wait's rest, no retry interval
    assert [e["type"] for e in events] == [
        "ExecutionResumed",
        "StateEntered",
        "StateExited",
        "ExecutionSucceeded",
    ]


def _beating(resource: str, payload: Any) -> Any:
    """``python:beat``: 2 s of work, saying it is alive every 0.1 s; ``python:quiet``
    the same without a word; anything else (an opendms: action) the same, silently."""
    from opendms.workflows import heartbeat

    for _ in range(20):
        time.sleep(0.1)
        if resource == "python:beat":
            heartbeat()
    return resource


def _heartbeat_machine(resource: str, catch: list[str]) -> dict[str, Any]:
    return {
        "Work": {
            "Type": "Task",
            "Resource": resource,
            "HeartbeatSeconds": 1,
            "Retry": [{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 2}],
            "Catch": [{"ErrorEquals": catch, "Next": "Caught"}],
            "End": True,
        },
        "Caught": {"Type": "Pass", "End": True},
    }


@pytest.mark.parametrize("resource", ["python:beat", "opendms:sql"])
def test_a_task_that_beats_or_is_ours_outlives_its_heartbeat_seconds(resource: str) -> None:
    out, waits, _ = _run(_heartbeat_machine(resource, ["States.ALL"]), {}, _beating)
    assert out == resource and waits == []


@pytest.mark.parametrize("catch", ["States.HeartbeatTimeout", "States.Timeout"])
def test_a_silent_python_task_fails_with_a_heartbeat_timeout(catch: str) -> None:
    began = time.monotonic()
    out, waits, events = _run(_heartbeat_machine("python:quiet", [catch]), {}, _beating)
    assert out["Error"] == "States.HeartbeatTimeout"  # caught: not retried as TaskFailed
    assert time.monotonic() - began < 1.8 and waits == []
    assert [e["error"] for e in events if e["type"] == "StateFailed"] == ["States.HeartbeatTimeout"]
