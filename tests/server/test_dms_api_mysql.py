"""boto3 against ``opendms serve``: MariaDB source -> S3 lake (SeaweedFS), full load and CDC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.oracles.lake import read_lake
from tests.server.dms import db_endpoint
from tests.server.test_dms_api import FAST, MAPPINGS, _changes, _stats
from tests.support.sql import execute
from tests.waiting import wait_until

pytestmark = [pytest.mark.mysql, pytest.mark.s3, pytest.mark.timeout(240)]


def _mysql_endpoint(dms: Any, url: str) -> str:
    return db_endpoint(dms, "maria", "source", "mariadb", url)


def _s3_endpoint(dms: Any, url: str) -> str:
    u = urlsplit(url)
    made = dms.create_endpoint(
        EndpointIdentifier="s3lake",
        EndpointType="target",
        EngineName="s3",
        ServerName=parse_qs(u.query)["endpoint_url"][0],
        S3Settings={
            "BucketName": u.netloc,
            "BucketFolder": u.path.strip("/"),
            "DataFormat": "parquet",
            "CdcMaxBatchInterval": 1,
        },
    )
    return str(made["Endpoint"]["EndpointArn"])


def test_mysql_to_s3_lake(dms: Any, mysql_db: str, s3_url: str) -> None:
    execute(
        mysql_db,
        ["CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))"]
        + [f"INSERT INTO items VALUES ({i}, 'n{i}')" for i in range(30)],
    )
    src, dst = _mysql_endpoint(dms, mysql_db), _s3_endpoint(dms, s3_url)
    for arn in (src, dst):
        conn = dms.test_connection(ReplicationInstanceArn="r", EndpointArn=arn)["Connection"]
        assert conn["Status"] == "successful", conn
    task = dms.create_replication_task(
        ReplicationTaskIdentifier="maria-s3",
        SourceEndpointArn=src,
        TargetEndpointArn=dst,
        ReplicationInstanceArn="r",
        MigrationType="full-load-and-cdc",
        TableMappings=MAPPINGS,
    )["ReplicationTask"]["ReplicationTaskArn"]
    flt = [{"Name": "replication-task-arn", "Values": [task]}]
    dms.start_replication_task(
        ReplicationTaskArn=task, StartReplicationTaskType="start-replication"
    )
    dms.get_waiter("replication_task_running").wait(Filters=flt, WaiterConfig=FAST)
    wait_until(lambda: _stats(dms, task).get("items", {}).get("FullLoadRows") == 30, 90, "load")
    execute(
        mysql_db,
        [
            "INSERT INTO items VALUES (100, 'new')",
            "UPDATE items SET name = 'changed' WHERE id = 1",
            "DELETE FROM items WHERE id = 2",
        ],
    )
    wait_until(lambda: _changes(dms, task) == (1, 1, 1), 90, "the changes to be applied")
    dms.stop_replication_task(ReplicationTaskArn=task)
    dms.get_waiter("replication_task_stopped").wait(Filters=flt, WaiterConfig=FAST)
    lake = read_lake(s3_url, "DataFormat=parquet", keys=["id"])
    table = next(t for name, t in lake.tables.items() if name.endswith(".items"))
    by_id = {r["id"]: r["name"] for r in table.rows}
    assert len(by_id) == 30 and by_id[100] == "new" and by_id[1] == "changed" and 2 not in by_id
    dms.delete_replication_task(ReplicationTaskArn=task)
    assert json.dumps(dms.describe_endpoints(), default=str).count("Password") == 0


class AwsCli:
    """``aws dms`` from the awscli package, against the server."""

    def __init__(self, server: str, home: Path) -> None:
        exe = Path(sys.executable).parent / "aws"
        self.args = [str(exe), "dms", "--endpoint-url", server, "--output", "json"]
        config = home / "aws-config"  # an S3 URL in --server-name is a value, not a file
        config.write_text("[default]\ncli_follow_urlparam = false\n")
        self.env = {
            **os.environ,
            "AWS_CONFIG_FILE": str(config),
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def __call__(self, *args: str) -> Any:
        done = subprocess.run(
            [*self.args, *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"aws dms {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else None


def test_mysql_to_s3_lake_with_the_aws_cli(
    server: str, mysql_db: str, s3_url: str, tmp_path: Path
) -> None:
    """The retail lab's flow (seed 004) with ``aws dms`` alone: endpoints, a
    full-load-and-cdc task, its statistics, stop, delete; the lake files hold the rows."""
    aws = AwsCli(server, tmp_path)
    execute(
        mysql_db,
        ["CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))"]
        + [f"INSERT INTO items VALUES ({i}, 'n{i}')" for i in range(20)],
    )
    u, s3 = urlsplit(mysql_db), urlsplit(s3_url)
    src = aws(
        "create-endpoint", "--endpoint-identifier", "maria", "--endpoint-type", "source",
        "--engine-name", "mariadb", "--server-name", str(u.hostname), "--port", str(u.port),
        "--database-name", unquote(u.path.lstrip("/")), "--username", unquote(u.username or ""),
        *(["--password", unquote(u.password)] if u.password else []),
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    settings = {
        "BucketName": s3.netloc,
        "BucketFolder": s3.path.strip("/"),
        "DataFormat": "parquet",
        "CdcMaxBatchInterval": 1,
    }
    dst = aws(
        "create-endpoint", "--endpoint-identifier", "lake", "--endpoint-type", "target",
        "--engine-name", "s3", "--server-name", parse_qs(s3.query)["endpoint_url"][0],
        "--s3-settings", json.dumps(settings),
    )["Endpoint"]["EndpointArn"]  # fmt: skip
    for arn in (src, dst):
        tested = aws("test-connection", "--replication-instance-arn", "r", "--endpoint-arn", arn)
        assert tested["Connection"]["Status"] == "successful", tested
    task = aws(
        "create-replication-task", "--replication-task-identifier", "retail",
        "--source-endpoint-arn", src, "--target-endpoint-arn", dst,
        "--replication-instance-arn", "r", "--migration-type", "full-load-and-cdc",
        "--table-mappings", MAPPINGS,
    )["ReplicationTask"]["ReplicationTaskArn"]  # fmt: skip
    flt = ["--filters", f"Name=replication-task-arn,Values={task}"]
    aws("wait", "replication-task-ready", *flt)
    aws("start-replication-task", "--replication-task-arn", task,
        "--start-replication-task-type", "start-replication")  # fmt: skip
    aws("wait", "replication-task-running", *flt)

    def stats() -> dict[str, Any]:
        out = aws("describe-table-statistics", "--replication-task-arn", task)
        return {t["TableName"]: t for t in out["TableStatistics"]}

    wait_until(lambda: stats().get("items", {}).get("FullLoadRows") == 20, 90, "the full load")
    execute(mysql_db, ["INSERT INTO items VALUES (100, 'new')", "DELETE FROM items WHERE id = 3"])
    wait_until(
        lambda: (stats()["items"]["Inserts"], stats()["items"]["Deletes"]) == (1, 1),
        90,
        "the changes to be applied",
    )
    aws("stop-replication-task", "--replication-task-arn", task)
    aws("wait", "replication-task-stopped", *flt)
    lake = read_lake(s3_url, "DataFormat=parquet", keys=["id"])
    table = next(t for name, t in lake.tables.items() if name.endswith(".items"))
    by_id = {r["id"]: r["name"] for r in table.rows}
    assert len(by_id) == 20 and by_id[100] == "new" and 3 not in by_id and by_id[4] == "n4"
    aws("delete-replication-task", "--replication-task-arn", task)
    aws("wait", "replication-task-deleted", *flt)
    for arn in (src, dst):
        aws("delete-endpoint", "--endpoint-arn", arn)
    assert aws("describe-endpoints")["Endpoints"] == []
