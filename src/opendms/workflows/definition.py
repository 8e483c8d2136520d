"""An Amazon States Language definition, read and checked before anything runs.

:func:`parse` gives a :class:`StateMachine` or one :class:`~opendms.errors.ConfigError`:
text that is not JSON is named by line and column (with a hint where a comma is
missing, the commonest slip, as in seed 003's second definition); a definition that is
not valid ASL is named by the JSON path of the field at fault
(``$.States['Load'].Retry[0].ErrorEquals``). The checks follow the States Language
specification: the top-level fields, every state type's required and allowed fields,
transitions to states that exist (in the same branch or item processor), ``End`` or
``Next`` where a state must have one, Choice rules, Wait's single time field, and the
Retry and Catch fields.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from opendms.errors import ConfigError

__all__ = ["STATE_TYPES", "StateMachine", "load", "parse"]

STATE_TYPES = ("Task", "Pass", "Choice", "Wait", "Parallel", "Map", "Succeed", "Fail")
_TOP = {"Comment", "StartAt", "States", "TimeoutSeconds", "Version", "QueryLanguage"}
_PATHS = {"InputPath", "OutputPath"}
_COMMON = {"Type", "Comment", *_PATHS}
_FLOW = {"Next", "End"}
_RESULT = {"ResultPath", "ResultSelector"}
_ERRORS = {"Retry", "Catch"}
_FIELDS: dict[str, set[str]] = {
    "Task": {
        *_COMMON,
        *_FLOW,
        *_RESULT,
        *_ERRORS,
        "Resource",
        "Parameters",
        "TimeoutSeconds",
        "TimeoutSecondsPath",
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        "Credentials",
    },
    "Pass": {*_COMMON, *_FLOW, "Result", "ResultPath", "Parameters"},
    "Choice": {*_COMMON, "Choices", "Default"},
    "Wait": {*_COMMON, *_FLOW, "Seconds", "Timestamp", "SecondsPath", "TimestampPath"},
    "Parallel": {*_COMMON, *_FLOW, *_RESULT, *_ERRORS, "Branches", "Parameters"},
    "Map": {
        *_COMMON,
        *_FLOW,
        *_RESULT,
        *_ERRORS,
        "ItemProcessor",
        "Iterator",
        "ItemsPath",
        "ItemSelector",
        "Parameters",
        "MaxConcurrency",
        "MaxConcurrencyPath",
        "ToleratedFailureCount",
        "ToleratedFailurePercentage",
        "Label",
    },
    "Succeed": set(_COMMON),
    "Fail": {"Type", "Comment", "Error", "ErrorPath", "Cause", "CausePath"},
}
_WAIT_TIMES = ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")
_RETRY = {
    "ErrorEquals",
    "IntervalSeconds",
    "MaxAttempts",
    "BackoffRate",
    "MaxDelaySeconds",
    "JitterStrategy",
    "Comment",
}
_CATCH = {"ErrorEquals", "Next", "ResultPath", "Comment"}
_TESTS = {
    f"{kind}{op}{path}"
    for kind in ("String", "Numeric", "Timestamp")
    for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    for path in ("", "Path")
} | {
    "BooleanEquals",
    "BooleanEqualsPath",
    "StringMatches",
    "IsNull",
    "IsPresent",
    "IsNumeric",
    "IsString",
    "IsBoolean",
    "IsTimestamp",
}
_BOOLEAN = ("And", "Or", "Not")


@dataclass(frozen=True)
class StateMachine:
    """A checked definition: ``states`` by name, as the JSON gave them."""

    start_at: str
    states: dict[str, dict[str, Any]]
    comment: str = ""
    timeout_s: int | None = None
    source: dict[str, Any] | None = None


def load(path: Path) -> StateMachine:
    """The definition in file ``path`` (ConfigError naming the file when it is wrong)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the definition: {exc}", where=str(path)) from None
    return parse(text, str(path))


def parse(text: str, where: str = "definition") -> StateMachine:
    """The state machine ``text`` defines; ConfigError naming ``where`` and the place."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(_json_problem(text, exc), where=where) from None
    check = _Checker(where)
    check.machine(data, "$")
    return StateMachine(
        data["StartAt"],
        dict(data["States"]),
        str(data.get("Comment", "")),
        data.get("TimeoutSeconds"),
        data,
    )


def _json_problem(text: str, exc: json.JSONDecodeError) -> str:
    """The JSON error by line and column; a missing comma is found at the start of the
    next member, so name the line before it too."""
    message = f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if exc.msg.startswith("Expecting ',' delimiter"):
        before = text[: exc.pos].rstrip()
        line = before.count("\n") + 1
        if line < exc.lineno:
            tail = before.rsplit("\n", 1)[-1].strip()
            message += f" (a comma missing at the end of line {line}, after {tail[-40:]}?)"
    return message


class _Checker:
    """Checks one definition; the first problem raises."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, message: str) -> NoReturn:
        raise ConfigError(message, where=self.where, path=path)

    def machine(self, data: Any, path: str) -> None:
        """A whole machine: the top level, a Parallel branch or a Map's item processor."""
        self.object(data, path)
        extra = set(data) - _TOP - ({"ProcessorConfig"} if path != "$" else set())
        if extra:
            self.fail(
                f"{path}.{sorted(extra)[0]}", f"not a field of a state machine ({_list(_TOP)})"
            )
        states = data.get("States")
        if not isinstance(states, dict) or not states:
            self.fail(f"{path}.States", "required: an object of one or more states")
        start = data.get("StartAt")
        if not isinstance(start, str):
            self.fail(f"{path}.StartAt", "required: the name of the first state")
        if start not in states:
            self.fail(f"{path}.StartAt", f"no state is named {start!r}")
        if "TimeoutSeconds" in data:
            self.whole(data["TimeoutSeconds"], f"{path}.TimeoutSeconds", 1)
        for name, state in states.items():
            self.state(state, f"{path}.States{_key(name)}", set(states))

    def state(self, state: Any, path: str, names: set[str]) -> None:
        self.object(state, path)
        kind = state.get("Type")
        if kind not in STATE_TYPES:
            self.fail(f"{path}.Type", f"required, one of {_list(STATE_TYPES)}; got {kind!r}")
        extra = set(state) - _FIELDS[kind]
        if extra:
            self.fail(f"{path}.{sorted(extra)[0]}", f"not a field of a {kind} state")
        if _FLOW & _FIELDS[kind]:
            self.flow(state, path, names)
        for field in ("InputPath", "OutputPath", "ResultPath", "ItemsPath"):
            if field in state and not _path_or_null(state[field]):
                self.fail(f"{path}.{field}", "a reference path starting with $, or null")
        _CHECKS.get(kind, _nothing)(self, state, path, names)
        for field in ("Retry", "Catch"):
            if field in state and not isinstance(state[field], list):
                self.fail(f"{path}.{field}", "a list of objects")
        for index, rule in enumerate(state.get("Retry", [])):
            self.retry(rule, f"{path}.Retry[{index}]")
        for index, rule in enumerate(state.get("Catch", [])):
            self.catch(rule, f"{path}.Catch[{index}]", names)

    def flow(self, state: dict[str, Any], path: str, names: set[str]) -> None:
        """Exactly one of ``Next`` (a state of this machine) and ``End: true``."""
        has_next, ends = "Next" in state, state.get("End") is True
        if "End" in state and not isinstance(state["End"], bool):
            self.fail(f"{path}.End", "true or false")
        if has_next == ends:
            why = "both" if has_next else "neither"
            self.fail(path, f'a {state["Type"]} state needs Next or "End": true ({why} given)')
        if has_next:
            self.target(state["Next"], f"{path}.Next", names)

    def target(self, name: Any, path: str, names: set[str]) -> None:
        if not isinstance(name, str) or name not in names:
            self.fail(path, f"no state {name!r} here (states: {_list(sorted(names))})")

    def task(self, state: dict[str, Any], path: str, names: set[str]) -> None:
        if not isinstance(state.get("Resource"), str) or not state["Resource"]:
            self.fail(f"{path}.Resource", "required: what the task runs (opendms:…, python:…)")
        timeout = state.get("TimeoutSeconds")
        if timeout is not None:
            self.whole(timeout, f"{path}.TimeoutSeconds", 1)
        beat = state.get("HeartbeatSeconds")
        if beat is not None:
            self.whole(beat, f"{path}.HeartbeatSeconds", 1)
            if timeout is not None and beat >= timeout:
                self.fail(f"{path}.HeartbeatSeconds", "must be less than TimeoutSeconds")

    def choice(self, state: dict[str, Any], path: str, names: set[str]) -> None:
        rules = state.get("Choices")
        if not isinstance(rules, list) or not rules:
            self.fail(f"{path}.Choices", "required: a list of one or more rules")
        for index, rule in enumerate(rules):
            where = f"{path}.Choices[{index}]"
            self.rule(rule, where, top=True)
            self.target(rule.get("Next"), f"{where}.Next", names)
        if "Default" in state:
            self.target(state["Default"], f"{path}.Default", names)

    def rule(self, rule: Any, path: str, top: bool) -> None:
        """A Choice rule: one comparison on a ``Variable``, or And/Or/Not of rules."""
        self.object(rule, path)
        if "Next" in rule and not top:
            self.fail(f"{path}.Next", "only a top-level Choice rule has Next")
        if top and "Next" not in rule:
            self.fail(f"{path}.Next", "required: the state this rule leads to")
        ops = [k for k in rule if k in _TESTS or k in _BOOLEAN]
        if len(ops) != 1:
            self.fail(path, f"one comparison operator or And/Or/Not (found {len(ops)})")
        op = ops[0]
        if op in _BOOLEAN:
            inner = rule[op]
            if op == "Not":
                self.rule(inner, f"{path}.Not", top=False)
            elif not isinstance(inner, list) or not inner:
                self.fail(f"{path}.{op}", "a list of one or more rules")
            else:
                for index, sub in enumerate(inner):
                    self.rule(sub, f"{path}.{op}[{index}]", top=False)
        elif not isinstance(rule.get("Variable"), str) or not rule["Variable"].startswith("$"):
            self.fail(f"{path}.Variable", "required: a path starting with $")

    def wait(self, state: dict[str, Any], path: str, names: set[str]) -> None:
        given = [f for f in _WAIT_TIMES if f in state]
        if len(given) != 1:
            self.fail(path, f"exactly one of {_list(_WAIT_TIMES)} (found {len(given)})")
        if given == ["Seconds"]:
            self.whole(state["Seconds"], f"{path}.Seconds", 0)

    def parallel(self, state: dict[str, Any], path: str, names: set[str]) -> None:
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            self.fail(f"{path}.Branches", "required: a list of one or more state machines")
        for index, branch in enumerate(branches):
            self.machine(branch, f"{path}.Branches[{index}]")

    def map(self, state: dict[str, Any], path: str, names: set[str]) -> None:
        field = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
        if field not in state:
            self.fail(f"{path}.ItemProcessor", "required: the state machine run per item")
        self.machine(state[field], f"{path}.{field}")
        if "MaxConcurrency" in state:
            self.whole(state["MaxConcurrency"], f"{path}.MaxConcurrency", 0)

    def fail_state(self, state: dict[str, Any], path: str, names: set[str]) -> None:
        for field in ("Error", "Cause"):
            if field in state and not isinstance(state[field], str):
                self.fail(f"{path}.{field}", "a string")

    def retry(self, rule: Any, path: str) -> None:
        self.object(rule, path)
        extra = set(rule) - _RETRY
        if extra:
            self.fail(f"{path}.{sorted(extra)[0]}", f"not a Retry field ({_list(_RETRY)})")
        self.errors(rule, path)
        for field, least in (("IntervalSeconds", 1), ("MaxAttempts", 0), ("MaxDelaySeconds", 1)):
            if field in rule:
                self.whole(rule[field], f"{path}.{field}", least)
        rate = rule.get("BackoffRate", 2.0)
        ok = isinstance(rate, int | float) and not isinstance(rate, bool) and math.isfinite(rate)
        if not ok or rate < 1.0:
            self.fail(f"{path}.BackoffRate", "a number of at least 1.0")
        if rule.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
            self.fail(f"{path}.JitterStrategy", "FULL or NONE")

    def catch(self, rule: Any, path: str, names: set[str]) -> None:
        self.object(rule, path)
        extra = set(rule) - _CATCH
        if extra:
            self.fail(f"{path}.{sorted(extra)[0]}", f"not a Catch field ({_list(_CATCH)})")
        self.errors(rule, path)
        self.target(rule.get("Next"), f"{path}.Next", names)
        if "ResultPath" in rule and not _path_or_null(rule["ResultPath"]):
            self.fail(f"{path}.ResultPath", "a reference path starting with $, or null")

    def errors(self, rule: dict[str, Any], path: str) -> None:
        names = rule.get("ErrorEquals")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            self.fail(f"{path}.ErrorEquals", "required: a list of one or more error names")
        if "States.ALL" in names and names != ["States.ALL"]:
            self.fail(f"{path}.ErrorEquals", "States.ALL must be the only error name")

    def whole(self, value: Any, path: str, least: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            self.fail(path, f"a whole number of at least {least}")

    def object(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.fail(path, f"must be a JSON object, not {_kind(value)}")


def _nothing(check: _Checker, state: dict[str, Any], path: str, names: set[str]) -> None:
    """States with nothing more to check."""


_CHECKS: dict[str, Callable[[_Checker, dict[str, Any], str, set[str]], None]] = {
    "Task": _Checker.task,
    "Choice": _Checker.choice,
    "Wait": _Checker.wait,
    "Parallel": _Checker.parallel,
    "Map": _Checker.map,
    "Fail": _Checker.fail_state,
}


def _path_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.startswith("$"))


def _key(name: str) -> str:
    if name.isidentifier():
        return f".{name}"
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    return f"['{quoted}']"


def _list(names: Any) -> str:
    return ", ".join(sorted(names) if isinstance(names, set) else names)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
