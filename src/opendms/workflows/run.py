"""Running a state machine in this process: the states' semantics, Retry and Catch.

:class:`Execution` walks a checked :class:`~opendms.workflows.definition.StateMachine`
from ``StartAt`` with a JSON input and gives its output, or raises :class:`StatesError`
(``Fail``, an error no Catch took). Every state transition is told to ``on_event``
(a history row). Task resources are called through ``resources`` (a callable: resource
name, payload -> result); ``python:pkg.module:function`` is built in.

Durability: each state's exit (its output and next state), each Task/Parallel/Map
attempt's outcome and each Wait's end time go to a :class:`Journal` before the execution
goes on; an execution run again over the same journal replays what it holds instead of
running it, so a resumed execution does not run a finished Task twice. A state is known
by its place: its name and visit count in its scope (the machine, a Map item, a Parallel
branch, under the attempt of the state around it).

Error names as in the States Language: a Python exception's class name
(``ValueError``), ``States.Timeout`` (a Task past ``TimeoutSeconds``),
``States.NoChoiceMatched``, ``States.Runtime`` (a path that matches nothing: never
retried or caught, even by ``States.ALL``), ``States.IntrinsicFailure``,
``States.TaskFailed`` (in a retrier or catcher: any error but ``States.Timeout``).
"""

from __future__ import annotations

import importlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from opendms.workflows.choice import choose
from opendms.workflows.definition import StateMachine
from opendms.workflows.paths import PathError, apply_result_path, read_path, render

__all__ = [
    "Execution",
    "Journal",
    "MemoryJournal",
    "StatesError",
    "heartbeat",
    "python_resource",
]

Resources = Callable[[str, Any], Any]
Event = dict[str, Any]
Place = tuple[Any, ...]


class Journal(Protocol):
    """Where an execution keeps what it must not do twice (keys are JSON text)."""

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any) -> Any:
        """Keep ``value``; gives it back as a replay will see it."""


class MemoryJournal:
    """A journal for one run in this process (nothing to resume)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def put(self, key: str, value: Any) -> Any:
        self.values[key] = value
        return value


def _key(kind: str, place: Place) -> str:
    return json.dumps([kind, *place])


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
        journal: Journal | None = None,
    ) -> None:
        self.machine, self.resources, self.sleep = machine, resources, sleep
        self.journal: Journal = journal or MemoryJournal()
        self.on_event = on_event or (lambda event: None)
        self.context: dict[str, Any] = {
            "Execution": {"Id": name, "Name": name, "StartTime": _now()},
            "StateMachine": {"Name": name},
        }
        self.lock = threading.Lock()

    def run(self, data: Any, resumed: bool = False) -> Any:
        """The machine's output for input ``data`` (StatesError when it fails);
        ``resumed``: going on from the journal of an interrupted run."""
        self.context["Execution"]["Input"] = data
        self._event("ExecutionResumed" if resumed else "ExecutionStarted", input=data)
        try:
            out = self.machine_run(self.machine.start_at, self.machine.states, data, self.context)
        except StatesError as exc:
            self._event("ExecutionFailed", error=exc.error, cause=exc.cause)
            raise
        self._event("ExecutionSucceeded", output=out)
        return out

    def machine_run(
        self,
        start: str,
        states: dict[str, dict[str, Any]],
        data: Any,
        context: Any,
        scope: Place = (),
    ) -> Any:
        """Run states from ``start`` until one ends the machine (replaying the exits
        the journal holds)."""
        visits: Counter[str] = Counter()
        name: str | None = start
        while name is not None:
            place = (*scope, name, visits[name])
            visits[name] += 1
            done = self.journal.get(_key("exit", place))
            if done is not None:
                data, name = done["output"], done["next"]
                continue
            self._event("StateEntered", state=name, input=data)
            here = {**context, "State": {"Name": name, "EnteredTime": _now()}}
            data, nxt = self.step(name, states[name], data, here, place)
            data = self.journal.put(_key("exit", place), {"output": data, "next": nxt})["output"]
            name = nxt
        return data

    def _event(self, kind: str, **fields: Any) -> None:
        with self.lock:
            self.on_event({"type": kind, "timestamp": _now(), **fields})

    # -- one state ---------------------------------------------------------------------

    def step(
        self, name: str, state: dict[str, Any], data: Any, context: Any, place: Place = ()
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
            return self._guarded(name, state, data, effective, (context, place))
        out, nxt = self._simple(kind, state, data, effective, (context, place))
        self._event("StateExited", state=name, output=out)
        return out, nxt

    def _simple(
        self, kind: str, state: dict[str, Any], data: Any, effective: Any, where: Any
    ) -> tuple[Any, str | None]:
        context, place = where
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
                self._wait(_wait_seconds(state, effective, context), place)
            return _path(state, "OutputPath", effective, context), _next(state)
        except PathError as exc:
            raise StatesError(exc.error, exc.cause) from None

    def _wait(self, seconds: float, place: Place) -> None:
        key = _key("wait", place)
        kept = self.journal.get(key)
        if kept is None:
            self.journal.put(key, {"until": time.time() + seconds})
            self.sleep(seconds)
        else:  # resumed: what is left of it
            self.sleep(max(float(kept["until"]) - time.time(), 0.0))

    def _guarded(
        self, name: str, state: dict[str, Any], data: Any, effective: Any, where: Any
    ) -> tuple[Any, str | None]:
        """A Task, Parallel or Map state with its Retry and Catch; each attempt's outcome
        is journaled, so a resumed execution replays the attempts made."""
        context, place = where
        attempts: dict[int, int] = {}
        attempt = 0
        while True:
            key = _key("attempt", (*place, attempt))
            outcome = self.journal.get(key)
            fresh = outcome is None
            if outcome is None:
                outcome = self._attempt(state, effective, context, (*place, attempt))
            if "error" not in outcome:
                if fresh:
                    outcome = self.journal.put(key, outcome)
                return self._exit(name, state, data, outcome["result"], context)
            exc = StatesError(outcome["error"], outcome["cause"])
            if fresh:
                self._event("StateFailed", state=name, error=exc.error, cause=exc.cause)
            delay = _retry_delay(state.get("Retry", []), exc.error, attempts)
            if delay is None:
                if fresh:
                    self.journal.put(key, outcome)
                return self._caught(name, state, data, exc)
            attempt += 1
            if fresh:
                self.journal.put(key, {**outcome, "retry_at": time.time() + delay})
                self._event("StateRetried", state=name, error=exc.error, wait_s=delay)
                self.sleep(delay)
            elif self.journal.get(_key("attempt", (*place, attempt))) is None:
                self.sleep(max(float(outcome.get("retry_at", 0)) - time.time(), 0.0))

    def _attempt(
        self, state: dict[str, Any], effective: Any, context: Any, place: Place
    ) -> dict[str, Any]:
        try:
            return {"result": self._work(state, effective, context, place)}
        except PathError as exc:
            raise StatesError(exc.error, exc.cause) from None
        except StatesError as exc:
            if exc.error == "States.Runtime":
                raise
            return {"error": exc.error, "cause": exc.cause}

    def _exit(
        self, name: str, state: dict[str, Any], data: Any, result: Any, context: Any
    ) -> tuple[Any, str | None]:
        try:
            selected = (
                render(state["ResultSelector"], result, context)
                if "ResultSelector" in state
                else result
            )
            out = apply_result_path(state.get("ResultPath", "$"), data, selected)
            out = _path(state, "OutputPath", out, context)
        except PathError as exc:
            raise StatesError(exc.error, exc.cause) from None
        self._event("StateExited", state=name, output=out)
        return out, _next(state)

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

    def _work(self, state: dict[str, Any], effective: Any, context: Any, place: Place) -> Any:
        payload = _params(state, effective, context)
        kind = state["Type"]
        if kind == "Task":
            return self._task(state, payload)
        if kind == "Parallel":
            return self._parallel(state, payload, context, place)
        return self._map(state, effective, context, place)

    def _task(self, state: dict[str, Any], payload: Any) -> Any:
        timeout, beat_s = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
        resource = state["Resource"]
        if timeout is None and beat_s is None:
            return self._call(resource, payload)
        # opendms: resources are alive while their call runs; python: ones say so
        beat = _Beat(None if not resource.startswith("python:") else beat_s)
        pool = ThreadPoolExecutor(1, thread_name_prefix="workflow-task")
        future = pool.submit(beat.run, self._call, resource, payload)
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        try:
            while True:
                left = [t - time.monotonic() for t in (deadline, beat.due()) if t is not None]
                try:
                    return future.result(timeout=max(min(left), 0.0) if left else None)
                except FutureTimeout:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise StatesError(
                            "States.Timeout", f"the task ran past {timeout} s"
                        ) from None
                    if beat.missed():
                        raise StatesError(
                            "States.HeartbeatTimeout", f"no heartbeat for {beat_s} s"
                        ) from None
        finally:
            pool.shutdown(wait=False)

    def _call(self, resource: str, payload: Any) -> Any:
        try:
            return self.resources(resource, payload)
        except StatesError:
            raise
        except Exception as exc:  # the task's own failure, named as Lambda names it
            raise StatesError(type(exc).__name__, str(exc)) from None

    def _parallel(self, state: dict[str, Any], payload: Any, context: Any, place: Place) -> Any:
        branches = state["Branches"]
        calls = [
            partial(
                self.machine_run,
                b["StartAt"],
                b["States"],
                payload,
                context,
                (*place, "branch", index),
            )
            for index, b in enumerate(branches)
        ]
        return _all(calls, len(branches), "workflow-branch")

    def _map(self, state: dict[str, Any], effective: Any, context: Any, place: Place) -> Any:
        items = read_path(state.get("ItemsPath", "$"), effective, context)
        if not isinstance(items, list):
            raise StatesError("States.Runtime", "the Map's items are not a list")
        machine = state.get("ItemProcessor") or state["Iterator"]
        selector = state.get("ItemSelector", state.get("Parameters"))
        workers = int(state.get("MaxConcurrency", 0)) or max(len(items), 1)

        def one(index: int, item: Any) -> Any:
            here = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
            data = render(selector, effective, here) if selector is not None else item
            inner = (*place, "item", index)
            return self.machine_run(machine["StartAt"], machine["States"], data, here, inner)

        calls = [partial(one, index, item) for index, item in enumerate(items)]
        return _all(calls, min(workers, 40), "workflow-item")


def _all(calls: Sequence[Callable[[], Any]], workers: int, prefix: str) -> list[Any]:
    """Each call's result, in order, at most ``workers`` at a time; after an error no
    call starts, and the error (the first in order among those that ended) is raised."""
    results: list[Any] = [None] * len(calls)
    errors: dict[int, BaseException] = {}
    waiting = iter(enumerate(calls))
    running: dict[Future[Any], int] = {}
    with ThreadPoolExecutor(max(workers, 1), thread_name_prefix=prefix) as pool:
        while True:
            while not errors and len(running) < workers:
                index, call = next(waiting, (-1, None))
                if call is None:
                    break
                running[pool.submit(call)] = index
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index = running.pop(future)
                error = future.exception()
                if error is not None:
                    errors[index] = error
                else:
                    results[index] = future.result()
    if errors:
        raise errors[min(errors)]
    return results


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
    """Whether a retrier's or catcher's ErrorEquals takes ``error`` (a heartbeat timeout
    is also a ``States.Timeout``; neither is a ``States.TaskFailed``)."""
    if error == "States.Runtime":
        return "States.Runtime" in names
    if "States.ALL" in names or error in names:
        return True
    if error == "States.HeartbeatTimeout":
        return "States.Timeout" in names
    return "States.TaskFailed" in names and error != "States.Timeout"


_beating = threading.local()


def heartbeat() -> None:
    """Called by a ``python:`` Task function: it is alive (for the state's
    ``HeartbeatSeconds``); elsewhere it does nothing."""
    beat: _Beat | None = getattr(_beating, "beat", None)
    if beat is not None:
        beat.last = time.monotonic()


class _Beat:
    """The heartbeats of one Task call; ``seconds`` None: none are awaited."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.last = time.monotonic()

    def run(self, call: Callable[[str, Any], Any], resource: str, payload: Any) -> Any:
        _beating.beat = self
        try:
            return call(resource, payload)
        finally:
            _beating.beat = None

    def due(self) -> float | None:
        return None if self.seconds is None else self.last + float(self.seconds)

    def missed(self) -> bool:
        due = self.due()
        return due is not None and time.monotonic() >= due


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
