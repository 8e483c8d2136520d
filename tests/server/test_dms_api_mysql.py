"""boto3 against ``opendms serve``: MariaDB source -> S3 lake (SeaweedFS), full load and CDC."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.oracles.lake import read_lake
from tests.server.test_dms_api import FAST, MAPPINGS, _changes, _stats
from tests.support.sql import execute
from tests.waiting import wait_until

pytestmark = [pytest.mark.mysql, pytest.mark.s3, pytest.mark.timeout(240)]


def _mysql_endpoint(dms: Any, url: str) -> str:
    u = urlsplit(url)
    made = dms.create_endpoint(
        EndpointIdentifier="maria",
        EndpointType="source",
        EngineName="mariadb",
        ServerName=u.hostname,
        Port=u.port,
        DatabaseName=unquote(u.path.lstrip("/")),
        Username=unquote(u.username or ""),
        Password=unquote(u.password or ""),
    )
    return str(made["Endpoint"]["EndpointArn"])


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
