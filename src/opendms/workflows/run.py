"""Running a state machine in this process: the states' semantics, Retry and Catch.

:class:`Execution` walks a checked :class:`~opendms.workflows.definition.StateMachine`
from ``StartAt`` with a JSON input and gives its output, or raises :class:`StatesError`
(``Fail``, an error no Catch took). Every state transition is told to ``on_event``
(a history row). Task resources are called through ``resources`` (a callable: resource
name, payload -> result); ``python:pkg.module:function`` is built in. This is the
interpreter; durable executions that resume after a crash build on its events.

Error names as in the States Language: a Python exception's class name
(``ValueError``), ``States.Timeout`` (a Task past ``TimeoutSeconds``),
``States.NoChoiceMatched``, ``States.Runtime`` (a path that matches nothing: never
retried or caught, even by ``States.ALL``), ``States.IntrinsicFailure``,
``States.TaskFailed`` (in a retrier or catcher: any error but ``States.Timeout``).
"""

from __future__ import annotations

import importlib
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from opendms.workflows.choice import choose
from opendms.workflows.definition import StateMachine
from opendms.workflows.paths import PathError, apply_result_path, read_path, render

__all__ = ["Execution", "StatesError", "python_resource"]

Resources = Callable[[str, Any], Any]
Event = dict[str, Any]


class StatesError(Exception):
    """An error in the States Language's terms: ``error`` (its name) and ``cause``."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error, self.cause = error, cause


def python_resource(resource: str, payload: Any) -> Any:
    """``python:pkg.module:function``: the function called with the payload."""
    path = resource.removeprefix("python:")
    module, _, attr = path.partition(":")
    try:
        function: Any = importlib.import_module(module)
        for name in attr.split("."):
            function = getattr(function, name)
    except (ImportError, AttributeError) as exc:
        raise StatesError("States.Runtime", f"cannot import {path}: {exc}") from None
    return function(payload)


def _default_resources(resource: str, payload: Any) -> Any:
    if resource.startswith("python:"):
        return python_resource(resource, payload)
    raise StatesError("States.Runtime", f"no such resource: {resource}")


class Execution:
    """One run of a state machine."""

    def __init__(
        self,
        machine: StateMachine,
        resources: Resources = _default_resources,
        on_event: Callable[[Event], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "execution",
    ) -> None:
        self.machine, self.resources, self.sleep = machine, resources, sleep
        self.on_event = on_event or (lambda event: None)
        self.context: dict[str, Any] = {
            "Execution": {"Id": name, "Name": name, "StartTime": _now()},
            "StateMachine": {"Name": name},
        }
        self.lock = threading.Lock()

    def run(self, data: Any) -> Any:
        """The machine's output for input ``data`` (StatesError when it fails)."""
        self.context["Execution"]["Input"] = data
        self._event("ExecutionStarted", input=data)
        try:
            out = self.machine_run(self.machine.start_at, self.machine.states, data, self.context)
        except StatesError as exc:
            self._event("ExecutionFailed", error=exc.error, cause=exc.cause)
            raise
        self._event("ExecutionSucceeded", output=out)
        return out

    def machine_run(
        self, start: str, states: dict[str, dict[str, Any]], data: Any, context: Any
    ) -> Any:
        """Run states from ``start`` until one ends the machine."""
        name: str | None = start
        while name is not None:
            state = states[name]
            self._event("StateEntered", state=name, input=data)
            context = {**context, "State": {"Name": name, "EnteredTime": _now()}}
            data, name = self.step(name, state, data, context)
        return data

    def _event(self, kind: str, **fields: Any) -> None:
        with self.lock:
            self.on_event({"type": kind, "timestamp": _now(), **fields})

    # -- one state ---------------------------------------------------------------------

    def step(
        self, name: str, state: dict[str, Any], data: Any, context: Any
    ) -> tuple[Any, str | None]:
        """(output, next state or None at the end) of one state."""
        kind = state["Type"]
        if kind == "Fail":
            raise StatesError(state.get("Error", "States.Failed"), state.get("Cause", ""))
        try:
            effective = _path(state, "InputPath", data, context)
        except PathError as exc:
            raise StatesError(exc.error, exc.cause) from None
        if kind in ("Task", "Parallel", "Map"):
            return self._guarded(name, state, data, effective, context)
        out, nxt = self._simple(kind, state, data, effective, context)
        self._event("StateExited", state=name, output=out)
        return out, nxt

    def _simple(
        self, kind: str, state: dict[str, Any], data: Any, effective: Any, context: Any
    ) -> tuple[Any, str | None]:
        try:
            if kind == "Pass":
                result = (
                    state["Result"] if "Result" in state else _params(state, effective, context)
                )
                out = apply_result_path(state.get("ResultPath", "$"), data, result)
                return _path(state, "OutputPath", out, context), _next(state)
            if kind == "Choice":
                nxt = choose(state["Choices"], effective, context) or state.get("Default")
                if nxt is None:
                    raise StatesError("States.NoChoiceMatched", "no Choice rule matched")
                return _path(state, "OutputPath", effective, context), nxt
            if kind == "Wait":
                self.sleep(_wait_seconds(state, effective, context))
            return _path(state, "OutputPath", effective, context), _next(state)
        except PathError as exc:
            raise StatesError(exc.error, exc.cause) from None

    def _guarded(
        self, name: str, state: dict[str, Any], data: Any, effective: Any, context: Any
    ) -> tuple[Any, str | None]:
        """A Task, Parallel or Map state with its Retry and Catch."""
        attempts: dict[int, int] = {}
        while True:
            try:
                result = self._work(state, effective, context)
                selected = (
                    render(state["ResultSelector"], result, context)
                    if "ResultSelector" in state
                    else result
                )
                out = apply_result_path(state.get("ResultPath", "$"), data, selected)
                out = _path(state, "OutputPath", out, context)
                self._event("StateExited", state=name, output=out)
                return out, _next(state)
            except PathError as exc:
                raise StatesError(exc.error, exc.cause) from None
            except StatesError as exc:
                self._event("StateFailed", state=name, error=exc.error, cause=exc.cause)
                delay = _retry_delay(state.get("Retry", []), exc.error, attempts)
                if delay is None:
                    return self._caught(name, state, data, exc)
                self._event("StateRetried", state=name, error=exc.error, wait_s=delay)
                self.sleep(delay)

    def _caught(
        self, name: str, state: dict[str, Any], data: Any, exc: StatesError
    ) -> tuple[Any, str | None]:
        for catcher in state.get("Catch", []):
            if _names_match(catcher["ErrorEquals"], exc.error):
                detail = {"Error": exc.error, "Cause": exc.cause}
                try:
                    out = apply_result_path(catcher.get("ResultPath", "$"), data, detail)
                except PathError as bad:
                    raise StatesError(bad.error, bad.cause) from None
                self._event("StateCaught", state=name, error=exc.error, next=catcher["Next"])
                return out, str(catcher["Next"])
        raise exc

    def _work(self, state: dict[str, Any], effective: Any, context: Any) -> Any:
        payload = _params(state, effective, context)
        kind = state["Type"]
        if kind == "Task":
            return self._task(state, payload)
        if kind == "Parallel":
            return self._parallel(state, payload, context)
        return self._map(state, effective, context)

    def _task(self, state: dict[str, Any], payload: Any) -> Any:
        timeout = state.get("TimeoutSeconds")
        if timeout is None:
            return self._call(state["Resource"], payload)
        pool = ThreadPoolExecutor(1, thread_name_prefix="workflow-task")
        future = pool.submit(self._call, state["Resource"], payload)
        try:
            return future.result(timeout=float(timeout))
        except FutureTimeout:
            raise StatesError("States.Timeout", f"the task ran past {timeout} s") from None
        finally:
            pool.shutdown(wait=False)

    def _call(self, resource: str, payload: Any) -> Any:
        try:
            return self.resources(resource, payload)
        except StatesError:
            raise
        except Exception as exc:  # the task's own failure, named as Lambda names it
            raise StatesError(type(exc).__name__, str(exc)) from None

    def _parallel(self, state: dict[str, Any], payload: Any, context: Any) -> Any:
        branches = state["Branches"]
        with ThreadPoolExecutor(len(branches), thread_name_prefix="workflow-branch") as pool:
            futures = [
                pool.submit(self.machine_run, b["StartAt"], b["States"], payload, context)
                for b in branches
            ]
            return [f.result() for f in futures]  # the first branch's error, in order

    def _map(self, state: dict[str, Any], effective: Any, context: Any) -> Any:
        items = read_path(state.get("ItemsPath", "$"), effective, context)
        if not isinstance(items, list):
            raise StatesError("States.Runtime", "the Map's items are not a list")
        machine = state.get("ItemProcessor") or state["Iterator"]
        selector = state.get("ItemSelector", state.get("Parameters"))
        workers = int(state.get("MaxConcurrency", 0)) or max(len(items), 1)

        def one(index: int, item: Any) -> Any:
            here = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
            data = render(selector, effective, here) if selector is not None else item
            return self.machine_run(machine["StartAt"], machine["States"], data, here)

        with ThreadPoolExecutor(min(workers, 40), thread_name_prefix="workflow-item") as pool:
            futures = [pool.submit(one, i, item) for i, item in enumerate(items)]
            return [f.result() for f in futures]


def _path(state: dict[str, Any], field: str, data: Any, context: Any) -> Any:
    """InputPath / OutputPath: ``$`` by default, null gives ``{}``."""
    path = state.get(field, "$")
    return {} if path is None else read_path(path, data, context)


def _params(state: dict[str, Any], data: Any, context: Any) -> Any:
    return render(state["Parameters"], data, context) if "Parameters" in state else data


def _next(state: dict[str, Any]) -> str | None:
    return None if state.get("End") or state["Type"] == "Succeed" else str(state["Next"])


def _wait_seconds(state: dict[str, Any], data: Any, context: Any) -> float:
    if "Seconds" in state:
        return float(state["Seconds"])
    if "SecondsPath" in state:
        value = read_path(state["SecondsPath"], data, context)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise StatesError("States.Runtime", f"SecondsPath gives {value!r}, not seconds")
        return float(value)
    stamp = state.get("Timestamp") or read_path(state["TimestampPath"], data, context)
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        raise StatesError("States.Runtime", f"{stamp!r} is not a timestamp") from None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _names_match(names: list[str], error: str) -> bool:
    """Whether a retrier's or catcher's ErrorEquals takes ``error``."""
    if error == "States.Runtime":
        return "States.Runtime" in names
    if "States.ALL" in names or error in names:
        return True
    return "States.TaskFailed" in names and error != "States.Timeout"


def _retry_delay(
    retriers: list[dict[str, Any]], error: str, attempts: dict[int, int]
) -> float | None:
    """Seconds to wait before the next attempt; None: no retrier has attempts left."""
    for index, retrier in enumerate(retriers):
        if not _names_match(retrier["ErrorEquals"], error):
            continue
        done = attempts.get(index, 0)
        if done >= int(retrier.get("MaxAttempts", 3)):
            return None
        attempts[index] = done + 1
        delay = (
            float(retrier.get("IntervalSeconds", 1))
            * float(retrier.get("BackoffRate", 2.0)) ** done
        )
        if "MaxDelaySeconds" in retrier:
            delay = min(delay, float(retrier["MaxDelaySeconds"]))
        if retrier.get("JitterStrategy") == "FULL":
            delay = random.uniform(0, delay)
        return delay
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
