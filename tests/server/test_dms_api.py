"""The AWS DMS JSON API through an unmodified boto3 client: SQLite -> local Parquet lake,
full load and CDC, and the faults DMS answers with."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from opendms.cli.main import cli
from tests.oracles.lake import read_lake
from tests.server.dms import make_task
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

MAPPINGS = json.dumps(
    {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "all",
                "object-locator": {"schema-name": "%", "table-name": "%"},
                "rule-action": "include",
            }
        ]
    }
)
FAST = {"Delay": 0.2, "MaxAttempts": 100}


def _source(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(rows)])


def _endpoints(dms: Any, tmp_path: Path) -> tuple[str, str]:
    src = dms.create_endpoint(
        EndpointIdentifier="src",
        EndpointType="source",
        EngineName="sqlite",
        DatabaseName=str(tmp_path / "src.db"),
    )["Endpoint"]["EndpointArn"]
    dst = dms.create_endpoint(
        EndpointIdentifier="lake",
        EndpointType="target",
        EngineName="file",
        DatabaseName=str(tmp_path / "lake"),
        ExtraConnectionAttributes="DataFormat=parquet;CdcMaxBatchInterval=1",
    )["Endpoint"]["EndpointArn"]
    return src, dst


def _task(dms: Any, src: str, dst: str, mappings: str = MAPPINGS) -> str:
    return make_task(dms, src, dst, mappings)


def _stats(dms: Any, task: str) -> dict[str, Any]:
    tables = dms.describe_table_statistics(ReplicationTaskArn=task)["TableStatistics"]
    return {t["TableName"]: t for t in tables}


def _changes(dms: Any, task: str) -> tuple[int, int, int]:
    s = _stats(dms, task)["items"]
    return s["Inserts"], s["Updates"], s["Deletes"]


def test_sqlite_to_lake_full_load_and_cdc(dms: Any, tmp_path: Path) -> None:
    _source(tmp_path / "src.db", 50)
    src, dst = _endpoints(dms, tmp_path)
    for arn in (src, dst):
        assert (
            dms.test_connection(ReplicationInstanceArn="r", EndpointArn=arn)["Connection"]["Status"]
            == "successful"
        )
    conns = dms.describe_connections()["Connections"]
    assert {c["EndpointArn"]: c["Status"] for c in conns} == {
        src: "successful",
        dst: "successful",
    }
    task = _task(dms, src, dst)
    flt = [{"Name": "replication-task-arn", "Values": [task]}]
    dms.get_waiter("replication_task_ready").wait(Filters=flt, WaiterConfig=FAST)
    cli_view = CliRunner().invoke(
        cli, ["--state", str(tmp_path / "state" / "state.db"), "task", "status", "items-task"]
    )
    assert "items-task" in cli_view.output, cli_view.output  # the CLI sees the same task
    dms.start_replication_task(
        ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
    )
    dms.get_waiter("replication_task_running").wait(Filters=flt, WaiterConfig=FAST)
    wait_until(
        lambda: _stats(dms, task).get("items", {}).get("FullLoadRows") == 50, 60, "full load"
    )
    again = {"ReplicationTaskArn": task, "StartReplicationTaskType": "resume-processing"}
    _fault(dms.start_replication_task, "InvalidResourceStateFault", **again)

    with sqlite3.connect(tmp_path / "src.db") as conn:
        conn.execute("INSERT INTO items VALUES (100, 'new')")
        conn.execute("UPDATE items SET name = 'changed' WHERE id = 1")
        conn.execute("DELETE FROM items WHERE id = 2")
    wait_until(lambda: _changes(dms, task) == (1, 1, 1), 60, "the changes to be applied")
    described = dms.describe_replication_tasks(Filters=flt)["ReplicationTasks"][0]
    assert described["ReplicationTaskStats"]["FullLoadProgressPercent"] == 100
    assert described["ReplicationTaskStats"]["TablesLoaded"] == 1

    dms.stop_replication_task(ReplicationTaskArn=task)
    dms.get_waiter("replication_task_stopped").wait(Filters=flt, WaiterConfig=FAST)
    rows = read_lake(tmp_path / "lake", "DataFormat=parquet", keys=["id"]).tables
    table = next(t for name, t in rows.items() if name.endswith(".items"))
    by_id = {r["id"]: r["name"] for r in table.rows}
    assert len(by_id) == 50 and by_id[100] == "new" and by_id[1] == "changed" and 2 not in by_id

    dms.delete_replication_task(ReplicationTaskArn=task)
    dms.get_waiter("replication_task_deleted").wait(Filters=flt, WaiterConfig=FAST)
    for arn in (src, dst):
        dms.delete_endpoint(EndpointArn=arn)
        dms.get_waiter("endpoint_deleted").wait(
            Filters=[{"Name": "endpoint-arn", "Values": [arn]}], WaiterConfig=FAST
        )


def _fault(call: Any, code: str, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    assert info.value.response["Error"]["Code"] == code
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(info.value.response["Error"]["Message"])


def test_faults(dms: Any, tmp_path: Path) -> None:
    _source(tmp_path / "src.db", 3)
    src, dst = _endpoints(dms, tmp_path)
    _fault(
        dms.describe_endpoints,
        "ResourceNotFoundFault",
        Filters=[{"Name": "endpoint-arn", "Values": ["nope"]}],
    )
    _fault(
        dms.delete_endpoint,
        "ResourceNotFoundFault",
        EndpointArn="arn:aws:dms:us-east-1:0:endpoint:NOPE",
    )
    _fault(
        dms.create_endpoint,
        "ResourceAlreadyExistsFault",
        EndpointIdentifier="src",
        EndpointType="source",
        EngineName="sqlite",
    )
    message = _fault(
        dms.create_replication_task,
        "InvalidParameterValueException",
        **_task_args(src, dst, '{"rules": ['),
    )
    assert "TableMappings" in message and "line 1" in message
    task = _task(dms, src, dst)
    _fault(dms.delete_endpoint, "InvalidResourceStateFault", EndpointArn=src)
    _fault(dms.stop_replication_task, "InvalidResourceStateFault", ReplicationTaskArn=task)
    dms.delete_replication_task(ReplicationTaskArn=task)


def _task_args(src: str, dst: str, mappings: str) -> dict[str, str]:
    return {
        "ReplicationTaskIdentifier": "bad",
        "SourceEndpointArn": src,
        "TargetEndpointArn": dst,
        "ReplicationInstanceArn": "r",
        "MigrationType": "full-load",
        "TableMappings": mappings,
    }


def test_password_never_returned(dms: Any, tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55"
    made = dms.create_endpoint(
        EndpointIdentifier="pg",
        EndpointType="source",
        EngineName="postgres",
        ServerName="127.0.0.1",
        Port=1,
        DatabaseName="db",
        Username="u",
        Password=secret,
    )
    arn = made["Endpoint"]["EndpointArn"]
    tested = dms.test_connection(ReplicationInstanceArn="r", EndpointArn=arn)
    texts = [made, dms.describe_endpoints(), tested, dms.describe_connections()]
    assert tested["Connection"]["Status"] == "failed"
    for text in texts:
        assert secret not in json.dumps(text, default=str)


def test_unknown_operation_and_bad_json(server: str) -> None:
    import httpx

    headers = {
        "X-Amz-Target": "AmazonDMSv20160101.Nope",
        "Content-Type": "application/x-amz-json-1.1",
    }
    r = httpx.post(server, headers=headers, content=b"{}")
    assert (r.status_code, r.json()["__type"]) == (400, "UnknownOperationException")
    headers["X-Amz-Target"] = "AmazonDMSv20160101.DescribeEndpoints"
    r = httpx.post(server, headers=headers, content=b"{nope")
    assert (r.status_code, r.json()["__type"]) == (400, "SerializationException")
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}


def test_pagination(dms: Any, tmp_path: Path) -> None:
    for i in range(25):
        dms.create_endpoint(
            EndpointIdentifier=f"e{i}",
            EndpointType="target",
            EngineName="file",
            DatabaseName=str(tmp_path),
        )
    first = dms.describe_endpoints(MaxRecords=20)
    second = dms.describe_endpoints(MaxRecords=20, Marker=first["Marker"])
    names = [e["EndpointIdentifier"] for e in first["Endpoints"] + second["Endpoints"]]
    assert names == [f"e{i}" for i in range(25)] and "Marker" not in second
    targets = dms.describe_endpoints(
        Filters=[{"Name": "engine-name", "Values": ["file"]}], MaxRecords=100
    )
    assert len(targets["Endpoints"]) == 25


@pytest.mark.skipif(
    shutil.which("aws", path=str(Path(sys.executable).parent)) is None, reason="no awscli"
)
def test_aws_cli(server: str) -> None:
    aws = str(Path(sys.executable).parent / "aws")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    args = [aws, "dms", "--endpoint-url", server, "--output", "json"]
    made = subprocess.run(
        [
            *args,
            "create-endpoint",
            "--endpoint-identifier",
            "cli",
            "--endpoint-type",
            "target",
            "--engine-name",
            "file",
            "--database-name",
            "/tmp",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(made.stdout)["Endpoint"]["EndpointIdentifier"] == "cli"
    listed = subprocess.run(
        [*args, "describe-endpoints"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert [e["EndpointIdentifier"] for e in json.loads(listed.stdout)["Endpoints"]] == ["cli"]


def test_table_statistics_carry_the_validation_state(dms: Any, tmp_path: Path) -> None:
    """EnableValidation: the table statistics show DMS's validation fields, from the
    validation the task ran after its full load."""
    _source(tmp_path / "src.db", 30)
    src, dst = _endpoints(dms, tmp_path)
    settings = json.dumps({"ValidationSettings": {"EnableValidation": True}})
    task = make_task(dms, src, dst, MAPPINGS, ident="checked", mtype="full-load", settings=settings)
    before = _stats(dms, task)
    assert all(t["ValidationState"] == "Pending records" for t in before.values())
    dms.start_replication_task(
        ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
    )
    flt = [{"Name": "replication-task-arn", "Values": [task]}]
    dms.get_waiter("replication_task_stopped").wait(Filters=flt, WaiterConfig=FAST)
    # the task validates once its load has finished: pending until then
    wait_until(
        lambda: _stats(dms, task)["items"]["ValidationState"] != "Pending records",
        60,
        "the validation after the load",
    )
    items = _stats(dms, task)["items"]
    assert items["FullLoadRows"] == 30
    assert (items["ValidationState"], items["ValidationFailedRecords"]) == ("Validated", 0)


def test_modify_endpoint_reaches_the_tasks_that_use_it(dms: Any, tmp_path: Path) -> None:
    """ModifyEndpoint rewrites the task files of its tasks: the next run reads the new
    source; a change that breaks a task is refused and leaves the endpoint as it was."""
    _source(tmp_path / "src.db", 5)
    _source(tmp_path / "other.db", 8)
    src, dst = _endpoints(dms, tmp_path)
    task = make_task(dms, src, dst, MAPPINGS, ident="moved", mtype="full-load")
    dms.modify_endpoint(EndpointArn=src, DatabaseName=str(tmp_path / "other.db"))
    _fault(
        dms.modify_endpoint, "InvalidParameterValueException", EndpointArn=src, EngineName="nope"
    )
    described = dms.describe_endpoints(Filters=[{"Name": "endpoint-arn", "Values": [src]}])
    assert described["Endpoints"][0]["EngineName"] == "sqlite"
    dms.start_replication_task(
        ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
    )
    flt = [{"Name": "replication-task-arn", "Values": [task]}]
    dms.get_waiter("replication_task_stopped").wait(Filters=flt, WaiterConfig=FAST)
    assert _stats(dms, task)["items"]["FullLoadRows"] == 8


def test_a_dynamodb_endpoint(dms: Any, dynalite_server: Any, monkeypatch: Any) -> None:
    """EngineName dynamodb: the server's region, ServerName a DynamoDB-compatible server,
    DynamoDbSettings' role accepted; TestConnection reaches it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    made = dms.create_endpoint(
        EndpointIdentifier="ddb",
        EndpointType="target",
        EngineName="dynamodb",
        ServerName=dynalite_server.endpoint_url,
        DynamoDbSettings={"ServiceAccessRoleArn": "arn:aws:iam::000000000000:role/dms"},
    )
    arn = made["Endpoint"]["EndpointArn"]
    tested = dms.test_connection(ReplicationInstanceArn="r", EndpointArn=arn)
    assert tested["Connection"]["Status"] == "successful", tested
    found = dms.describe_endpoints(Filters=[{"Name": "engine-name", "Values": ["dynamodb"]}])
    assert [e["EndpointArn"] for e in found["Endpoints"]] == [arn]
