"""The Step Functions API beside the DMS API, driven by an unmodified boto3
``stepfunctions`` client: state machines, executions run by the server (their
``opendms:sql`` Tasks naming a DMS endpoint the server keeps), history, faults, and
cron schedules."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from opendms.server.schedules import schedule_runs
from opendms.server.sfnapi import StepFunctionsApi, WorkflowScheduler
from tests.waiting import wait_until

SQL = "opendms:sql"


def _client(server: str, service: str) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=server,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )


def _machine(bad_table: bool = False) -> str:
    table = "nope" if bad_table else "runs"
    return json.dumps(
        {
            "Comment": "count the runs in a SQLite endpoint of the server",
            "StartAt": "Record",
            "States": {
                "Record": {
                    "Type": "Task",
                    "Resource": SQL,
                    "Parameters": {
                        "Endpoint": "lite",
                        "Statement": f"INSERT INTO {table} (n) VALUES (?)",
                        "Parameters.$": "States.Array($.n)",
                    },
                    "ResultPath": None,
                    "Next": "Count",
                },
                "Count": {
                    "Type": "Task",
                    "Resource": SQL,
                    "Parameters": {"Endpoint": "lite", "Statement": "SELECT sum(n) AS s FROM runs"},
                    "OutputPath": "$.Rows[0]",
                    "End": True,
                },
            },
        }
    )


@pytest.fixture
def lite(server: str, tmp_path: Path) -> Path:
    path = tmp_path / "lite.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (n INTEGER)")
    conn.commit()
    conn.close()
    _client(server, "dms").create_endpoint(
        EndpointIdentifier="lite",
        EndpointType="source",
        EngineName="sqlite",
        DatabaseName=str(path),
    )
    return path


def _finished(sfn: Any, arn: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        found: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        return None if found["status"] == "RUNNING" else found

    found = wait_until(ended, 60, "the execution to end")
    assert found is not None
    return found


def test_boto3_starts_describes_and_reads_the_history(server: str, lite: Path) -> None:
    sfn = _client(server, "stepfunctions")
    made = sfn.create_state_machine(name="counter", definition=_machine(), roleArn="arn:x")
    arn = made["stateMachineArn"]
    assert arn == "arn:aws:states:us-east-1:000000000000:stateMachine:counter"
    started = sfn.start_execution(stateMachineArn=arn, name="first", input='{"n": 5}')
    done = _finished(sfn, started["executionArn"])
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"s": 5}
    assert json.loads(done["input"]) == {"n": 5} and done["stopDate"] >= done["startDate"]
    second = sfn.start_execution(stateMachineArn=arn, input='{"n": 7}')
    assert json.loads(_finished(sfn, second["executionArn"])["output"]) == {"s": 12}
    conn = sqlite3.connect(lite)
    assert conn.execute("SELECT n FROM runs ORDER BY rowid").fetchall() == [(5,), (7,)]
    conn.close()

    events = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskStateExited",
        "TaskStateEntered",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[1]["stateEnteredEventDetails"]["name"] == "Record"
    assert json.loads(events[-1]["executionSucceededEventDetails"]["output"]) == {"s": 5}
    page = sfn.get_execution_history(executionArn=started["executionArn"], maxResults=4)
    rest = sfn.get_execution_history(
        executionArn=started["executionArn"], maxResults=4, nextToken=page["nextToken"]
    )
    assert [e["id"] for e in page["events"] + rest["events"]] == [1, 2, 3, 4, 5, 6]
    listed = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert [e["status"] for e in listed] == ["SUCCEEDED", "SUCCEEDED"]
    assert listed[0]["name"] == "first"
    machines = sfn.list_state_machines()["stateMachines"]
    assert [m["name"] for m in machines] == ["counter"]
    assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])


def test_a_failed_execution_and_the_faults(server: str, lite: Path) -> None:
    sfn = _client(server, "stepfunctions")
    arn = sfn.create_state_machine(name="broken", definition=_machine(True), roleArn="r")[
        "stateMachineArn"
    ]
    started = sfn.start_execution(stateMachineArn=arn, name="one", input='{"n": 1}')
    failed = _finished(sfn, started["executionArn"])
    assert failed["status"] == "FAILED" and failed["error"] == "OperationalError"
    assert "no such table: nope" in failed["cause"]
    with pytest.raises(ClientError) as twice:
        sfn.start_execution(stateMachineArn=arn, name="one")
    assert twice.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
    with pytest.raises(ClientError) as missing:
        sfn.describe_execution(executionArn=started["executionArn"] + "x")
    assert missing.value.response["Error"]["Code"] == "ExecutionDoesNotExist"
    bad = '{\n"Comment": "State machine to populate databases for reports."\n"StartAt": "A"}'
    with pytest.raises(ClientError) as invalid:
        sfn.create_state_machine(name="bad", definition=bad, roleArn="r")
    assert invalid.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "a comma missing at the end of line 2" in invalid.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as no_input:
        sfn.start_execution(stateMachineArn=arn, input="{nope")
    assert no_input.value.response["Error"]["Code"] == "InvalidExecutionInput"
    with pytest.raises(ClientError) as unknown:
        sfn.start_execution(stateMachineArn=arn.replace("broken", "gone"))
    assert unknown.value.response["Error"]["Code"] == "StateMachineDoesNotExist"


def test_a_scheduled_machine_runs_at_its_due_times(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = tmp_path / "lite.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE runs (n INTEGER)")
    conn.commit()
    conn.close()
    api = StepFunctionsApi(state, "us-east-1", lambda: {"lite": f"sqlite:///{db}"})
    tags = [
        {"key": "opendms:schedule", "value": "*/5 * * * *"},
        {"key": "opendms:schedule-input", "value": '{"n": 2}'},
    ]
    api.call("CreateStateMachine", {"name": "nightly", "definition": _machine(), "tags": tags})
    now = [datetime(2026, 12, 5, 10, 1, tzinfo=datetime.now().astimezone().tzinfo)]
    scheduler = WorkflowScheduler(api, lambda: now[0])
    assert scheduler.tick() == []  # the first look: next due 10:05
    now[0] += timedelta(minutes=3)
    assert scheduler.tick() == []
    now[0] += timedelta(minutes=2)
    assert scheduler.tick() == ["nightly-20261205T100500"]
    arn = api.execution_arn("nightly", "nightly-20261205T100500")
    done = wait_until(
        lambda: (
            (d := api.call("DescribeExecution", {"executionArn": arn}))["status"] != "RUNNING" and d
        ),
        60,
        "the scheduled execution",
    )
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"s": 2}
    runs = schedule_runs(state, "workflow/nightly")
    assert [(r.due[11:16], r.outcome) for r in runs] == [("10:05", "started")]
    listed = api.call("ListTagsForResource", {"resourceArn": api.machine_arn("nightly")})
    assert listed["tags"][0] == {"key": "opendms:schedule", "value": "*/5 * * * *"}


def test_a_server_that_starts_takes_up_interrupted_executions(tmp_path: Path) -> None:
    from opendms.server.app import create_app
    from opendms.workflows.store import WorkflowStore
    from tests.server.conftest import running

    state = tmp_path / "again"
    state.mkdir()
    machine = json.dumps(
        {
            "StartAt": "Add",
            "States": {
                "Add": {
                    "Type": "Pass",
                    "Parameters": {"s.$": "States.MathAdd($.n, 1)"},
                    "End": True,
                }
            },
        }
    )
    api = StepFunctionsApi(state, "us-east-1", dict)
    api.call("CreateStateMachine", {"name": "adder", "definition": machine})
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that ran the execution and died
    store = WorkflowStore(state / "state.db")
    store.create("left", "adder", machine, {"n": 3}, str(state), pid=dead.pid)
    assert store.execution("left").interrupted
    with running(create_app(state)) as url:
        done = _finished(_client(url, "stepfunctions"), api.execution_arn("adder", "left"))
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"s": 4}
