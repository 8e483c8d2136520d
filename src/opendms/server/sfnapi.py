"""The AWS Step Functions JSON 1.0 API: ``X-Amz-Target: AWSStepFunctions.<Operation>``,
beside the DMS API on ``POST /``, so ``boto3.client("stepfunctions", endpoint_url=...)``
can keep state machines and start and watch executions.

State machines live in the state store's workflow tables; each execution runs in a
process of its own (``opendms workflow resume NAME`` of an execution this server
created), so it is durable as a CLI run is, and a stopped server's executions are taken
up again by :meth:`StepFunctionsApi.resume_interrupted`. The ``opendms:`` resources
name the server's DMS endpoints by their identifiers (passed to the process in its
environment, never on its command line)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from opendms.errors import ConfigError
from opendms.server.shapes import Body, DmsError
from opendms.state.private import private_dir, private_file
from opendms.workflows.definition import parse
from opendms.workflows.store import (
    ABORTED,
    RUNNING,
    ExecutionRecord,
    MachineRecord,
    WorkflowStore,
)

SFN_PREFIX = "AWSStepFunctions."
SFN_CONTENT_TYPE = "application/x-amz-json-1.0"
ACCOUNT = "000000000000"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
Endpoints = Callable[[], dict[str, str]]


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _fault(code: str, message: str) -> DmsError:
    return DmsError(code, message)


class StepFunctionsApi:
    """The Step Functions operations of one server."""

    def __init__(self, state: Path, region: str, endpoints: Endpoints) -> None:
        self.state_db = state / "state.db"
        self.folder = state / "workflows"
        self.region = region
        self.endpoints = endpoints
        self.store = WorkflowStore(self.state_db)
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def call(self, operation: str, body: Body) -> Body:
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise _fault("UnknownOperationException", f"unknown operation {operation!r}")
        try:
            out: Body = handler(self, body)
        except ConfigError as exc:
            raise _fault("InvalidParameterValue", str(exc)) from None
        self._reap()
        return out

    # -- ARNs ----------------------------------------------------------------------------

    def machine_arn(self, name: str) -> str:
        return f"arn:aws:states:{self.region}:{ACCOUNT}:stateMachine:{name}"

    def execution_arn(self, machine: str, name: str) -> str:
        return f"arn:aws:states:{self.region}:{ACCOUNT}:execution:{machine}:{name}"

    def _machine(self, body: Body) -> MachineRecord:
        arn = _required(body, "stateMachineArn")
        name = arn.rsplit(":", 1)[-1]
        found = self.store.machine(name) if arn == self.machine_arn(name) else None
        if found is None:
            raise _fault("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
        return found

    def _execution(self, body: Body) -> ExecutionRecord:
        arn = _required(body, "executionArn")
        parts = arn.split(":")
        try:
            found = self.store.execution(parts[-1]) if len(parts) == 8 else None
        except ConfigError:
            found = None
        if found is None or self.execution_arn(found.machine, found.name) != arn:
            raise _fault("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return found

    # -- state machines ------------------------------------------------------------------

    def create_state_machine(self, body: Body) -> Body:
        name = _name(body, "name")
        definition = _definition(body)
        schedule, given = _schedule_tags(body.get("tags") or [], "", "{}")
        record = MachineRecord(
            name, definition, str(body.get("roleArn", "")), _now(), schedule, given
        )
        if self.store.machine(name) is not None:
            raise _fault("StateMachineAlreadyExists", f"State Machine Already Exists: '{name}'")
        self.store.put_machine(record)
        return {
            "stateMachineArn": self.machine_arn(name),
            "creationDate": _epoch(record.created_at),
        }

    def update_state_machine(self, body: Body) -> Body:
        found = self._machine(body)
        definition = _definition(body) if "definition" in body else found.definition
        role = str(body.get("roleArn", found.role_arn))
        updated = MachineRecord(
            found.name, definition, role, found.created_at, found.schedule, found.schedule_input
        )
        self.store.put_machine(updated, replace=True)
        return {"updateDate": _epoch(_now())}

    def describe_state_machine(self, body: Body) -> Body:
        found = self._machine(body)
        return {
            "stateMachineArn": self.machine_arn(found.name),
            "name": found.name,
            "status": "ACTIVE",
            "definition": found.definition,
            "roleArn": found.role_arn or f"arn:aws:iam::{ACCOUNT}:role/opendms",
            "type": "STANDARD",
            "creationDate": _epoch(found.created_at),
        }

    def list_state_machines(self, body: Body) -> Body:
        return {
            "stateMachines": [
                {
                    "stateMachineArn": self.machine_arn(m.name),
                    "name": m.name,
                    "type": "STANDARD",
                    "creationDate": _epoch(m.created_at),
                }
                for m in self.store.machines()
            ]
        }

    def tag_resource(self, body: Body) -> Body:
        """Tags of a state machine: ``opendms:schedule`` (cron) and
        ``opendms:schedule-input`` (JSON) set its schedule; other tags are not kept."""
        found = self._machine({"stateMachineArn": _required(body, "resourceArn")})
        schedule, given = _schedule_tags(
            body.get("tags") or [], found.schedule, found.schedule_input
        )
        self.store.put_machine(
            MachineRecord(
                found.name, found.definition, found.role_arn, found.created_at, schedule, given
            ),
            replace=True,
        )
        return {}

    def list_tags_for_resource(self, body: Body) -> Body:
        found = self._machine({"stateMachineArn": _required(body, "resourceArn")})
        tags = []
        if found.schedule:
            tags = [
                {"key": SCHEDULE_TAG, "value": found.schedule},
                {"key": SCHEDULE_INPUT_TAG, "value": found.schedule_input},
            ]
        return {"tags": tags}

    def delete_state_machine(self, body: Body) -> Body:
        found = self._machine(body)
        self.store.delete_machine(found.name)
        return {}

    # -- executions ----------------------------------------------------------------------

    def start_execution(self, body: Body) -> Body:
        machine = self._machine(body)
        name = _name(body, "name") if "name" in body else uuid.uuid4().hex
        text = body.get("input", "{}")
        try:
            data = json.loads(text) if isinstance(text, str) else None
        except json.JSONDecodeError as exc:
            data = exc
        if not isinstance(text, str) or isinstance(data, json.JSONDecodeError):
            raise _fault("InvalidExecutionInput", "the input is not a JSON text")
        try:
            self.store.create(
                name, machine.name, machine.definition, data, str(self.folder), os.getpid()
            )
        except ConfigError:
            raise _fault("ExecutionAlreadyExists", f"Execution Already Exists: '{name}'") from None
        self._launch(name)
        record = self.store.execution(name)
        return {
            "executionArn": self.execution_arn(machine.name, name),
            "startDate": _epoch(record.started_at),
        }

    def _launch(self, name: str) -> None:
        """``workflow resume NAME`` in a process of its own (its output in a log)."""
        logs = self.folder / "logs"
        private_dir(logs)
        log = logs / f"{name}.log"
        private_file(log)
        args = [sys.executable, "-m", "opendms.cli.main", "--state", str(self.state_db)]
        args += ["workflow", "resume", name]
        env = {**os.environ, "OPENDMS_ENDPOINTS": json.dumps(self.endpoints())}
        with log.open("ab") as out:
            self.children[name] = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                cwd=self.folder,
                start_new_session=True,
            )

    def _reap(self) -> None:
        for name, proc in list(self.children.items()):
            if proc.poll() is not None:
                del self.children[name]

    def resume_interrupted(self) -> list[str]:
        """Take up the executions whose process died (a server restart): their names."""
        found = [r.name for r in self.store.executions() if r.interrupted]
        for name in found:
            self._launch(name)
        return found

    def describe_execution(self, body: Body) -> Body:
        record = self._execution(body)
        out: Body = {
            "executionArn": self.execution_arn(record.machine, record.name),
            "stateMachineArn": self.machine_arn(record.machine),
            "name": record.name,
            "status": record.status,
            "startDate": _epoch(record.started_at),
            "input": json.dumps(record.input),
        }
        if record.stopped_at:
            out["stopDate"] = _epoch(record.stopped_at)
        if record.status == "SUCCEEDED":
            out["output"] = json.dumps(record.output)
        if record.error:
            out.update(error=record.error, cause=record.cause)
        return out

    def list_executions(self, body: Body) -> Body:
        machine = self._machine(body)
        wanted = body.get("statusFilter")
        return {
            "executions": [
                {
                    "executionArn": self.execution_arn(r.machine, r.name),
                    "stateMachineArn": self.machine_arn(r.machine),
                    "name": r.name,
                    "status": r.status,
                    "startDate": _epoch(r.started_at),
                    **({"stopDate": _epoch(r.stopped_at)} if r.stopped_at else {}),
                }
                for r in self.store.executions(machine.name)
                if wanted in (None, r.status)
            ]
        }

    def stop_execution(self, body: Body) -> Body:
        record = self._execution(body)
        if record.status == RUNNING:
            if record.pid and record.pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record.pid, signal.SIGKILL)
            self.store.finish(
                record.name,
                error=str(body.get("error", "")),
                cause=str(body.get("cause", "")),
                status=ABORTED,
            )
        return {"stopDate": _epoch(self.store.execution(record.name).stopped_at or _now())}

    def get_execution_history(self, body: Body) -> Body:
        record = self._execution(body)
        kinds = _state_types(json.loads(record.definition))
        events = [_event(e, kinds) for e in self.store.events(record.name)]
        if body.get("reverseOrder"):
            events.reverse()
        start = int(body.get("nextToken") or 0)
        size = int(body.get("maxResults") or 1000) or 1000
        out: Body = {"events": events[start : start + size]}
        if start + size < len(events):
            out["nextToken"] = str(start + size)
        return out


def _event(event: dict[str, Any], kinds: dict[str, str]) -> Body:
    """One history event in Step Functions' shape."""
    kind = event["type"]
    state = event.get("state", "")
    out: Body = {
        "timestamp": _epoch(event["timestamp"]),
        "id": event["id"],
        "previousEventId": event["id"] - 1,
    }
    if kind == "ExecutionStarted":
        out["executionStartedEventDetails"] = {"input": json.dumps(event.get("input"))}
    elif kind == "ExecutionSucceeded":
        out["executionSucceededEventDetails"] = {"output": json.dumps(event.get("output"))}
    elif kind == "ExecutionFailed":
        out["executionFailedEventDetails"] = {"error": event["error"], "cause": event["cause"]}
    elif kind == "StateEntered":
        kind = f"{kinds.get(state, 'Pass')}StateEntered"
        out["stateEnteredEventDetails"] = {"name": state, "input": json.dumps(event["input"])}
    elif kind == "StateExited":
        kind = f"{kinds.get(state, 'Pass')}StateExited"
        out["stateExitedEventDetails"] = {"name": state, "output": json.dumps(event["output"])}
    elif kind == "StateFailed":
        kind = "TaskFailed" if kinds.get(state) == "Task" else f"{kinds.get(state)}StateFailed"
        out["taskFailedEventDetails"] = {
            "resourceType": "opendms",
            "resource": state,
            "error": event["error"],
            "cause": event["cause"],
        }
    out["type"] = kind
    return out


def _state_types(definition: dict[str, Any]) -> dict[str, str]:
    """Each state's type by name, in the machine and in its branches and item processors."""
    found: dict[str, str] = {}
    for name, state in definition.get("States", {}).items():
        found[name] = state.get("Type", "Pass")
        for inner in [*state.get("Branches", []), state.get("ItemProcessor") or {}]:
            found.update(_state_types(inner))
        if "Iterator" in state:
            found.update(_state_types(state["Iterator"]))
    return found


def _schedule_tags(tags: Any, schedule: str, given: str) -> tuple[str, str]:
    """The schedule and its input from Step Functions tags (``[{key, value}]``)."""
    from croniter import croniter  # type: ignore[import-untyped]

    if not isinstance(tags, list):
        raise _fault("ValidationException", "tags must be a list of {key, value}")
    for tag in tags:
        key, value = str(tag.get("key", "")), str(tag.get("value", ""))
        if key == SCHEDULE_TAG:
            if value and not croniter.is_valid(value):
                raise _fault(
                    "ValidationException", f"{SCHEDULE_TAG} {value!r} is not a cron expression"
                )
            schedule = value
        elif key == SCHEDULE_INPUT_TAG:
            try:
                json.loads(value)
            except json.JSONDecodeError:
                raise _fault("ValidationException", f"{SCHEDULE_INPUT_TAG} is not JSON") from None
            given = value
    return schedule, given


def _required(body: Body, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise _fault("ValidationException", f"{field} is required")
    return value


def _name(body: Body, field: str) -> str:
    value = _required(body, field)
    if not NAME.match(value):
        raise _fault("InvalidName", f"Invalid Name: '{value}' (letters, digits, - and _)")
    return value


def _definition(body: Body) -> str:
    text = _required(body, "definition")
    try:
        parse(text, "definition")
    except ConfigError as exc:
        raise _fault("InvalidDefinition", str(exc)) from None
    return text


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


OPERATIONS: dict[str, Callable[[StepFunctionsApi, Body], Body]] = {
    "CreateStateMachine": StepFunctionsApi.create_state_machine,
    "UpdateStateMachine": StepFunctionsApi.update_state_machine,
    "DescribeStateMachine": StepFunctionsApi.describe_state_machine,
    "ListStateMachines": StepFunctionsApi.list_state_machines,
    "DeleteStateMachine": StepFunctionsApi.delete_state_machine,
    "StartExecution": StepFunctionsApi.start_execution,
    "DescribeExecution": StepFunctionsApi.describe_execution,
    "ListExecutions": StepFunctionsApi.list_executions,
    "StopExecution": StepFunctionsApi.stop_execution,
    "GetExecutionHistory": StepFunctionsApi.get_execution_history,
    "TagResource": StepFunctionsApi.tag_resource,
    "ListTagsForResource": StepFunctionsApi.list_tags_for_resource,
}


SCHEDULE_TAG = "opendms:schedule"
SCHEDULE_INPUT_TAG = "opendms:schedule-input"


class WorkflowScheduler:
    """Starts the executions of the state machines whose cron schedule is due (the tag
    ``opendms:schedule`` of ``CreateStateMachine`` or ``TagResource``, with the input of
    ``opendms:schedule-input``); run by the supervisor's tick. An execution of the machine
    still running at a due time skips it. Each due time is recorded with the task
    schedules' runs, as ``workflow/<machine>``."""

    def __init__(self, api: StepFunctionsApi, clock: Callable[[], datetime]) -> None:
        self.api = api
        self.clock = clock
        self.due: dict[str, tuple[str, datetime]] = {}

    def tick(self) -> list[str]:
        """The executions this tick started."""
        from opendms.server.schedules import next_time

        now = self.clock()
        started: list[str] = []
        for machine in self.api.store.machines():
            if not machine.schedule:
                self.due.pop(machine.name, None)
                continue
            known = self.due.get(machine.name)
            if known is None or known[0] != machine.schedule:
                self.due[machine.name] = (machine.schedule, next_time(machine.schedule, now))
            elif now >= known[1]:
                self.due[machine.name] = (machine.schedule, next_time(machine.schedule, now))
                started += self._fire(machine, known[1], now)
        return started

    def _fire(self, machine: MachineRecord, due: datetime, now: datetime) -> list[str]:
        running = [r.name for r in self.api.store.executions(machine.name) if r.status == RUNNING]
        if running:
            self._record(machine, due, now, "skipped", f"{running[0]} is still running")
            return []
        name = f"{machine.name}-{due.strftime('%Y%m%dT%H%M%S')}"
        body = {"stateMachineArn": self.api.machine_arn(machine.name), "name": name}
        try:
            self.api.start_execution({**body, "input": machine.schedule_input})
        except DmsError as exc:
            self._record(machine, due, now, "failed", exc.message)
            return []
        self._record(machine, due, now, "started", f"execution {name}")
        return [name]

    def _record(
        self, machine: MachineRecord, due: datetime, now: datetime, outcome: str, why: str
    ) -> None:
        from opendms.server.schedules import RUNS_FILE, connect_runs

        conn = connect_runs(self.api.state_db.parent / RUNS_FILE)
        try:
            conn.execute(
                "INSERT INTO schedule_runs VALUES (?, ?, ?, ?, ?)",
                (f"workflow/{machine.name}", due.isoformat(), now.isoformat(), outcome, why),
            )
        finally:
            conn.close()
