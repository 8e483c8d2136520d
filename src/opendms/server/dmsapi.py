"""The AWS DMS JSON 1.1 API: ``X-Amz-Target: AmazonDMSv20160101.<Operation>``.

:class:`DmsApi` maps each operation to :class:`~opendms.service.TaskService` and the
server's :class:`~opendms.resources.ResourceStore`. A fault is a :class:`DmsError`
carrying DMS's ``__type``; the application answers it with HTTP 400 as AWS does.
Passwords are never part of a response or an error message."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from opendms.config import TaskSpec, json_path
from opendms.endpoints import check_endpoint
from opendms.errors import ConfigError, OpenDMSError
from opendms.server.resources import Endpoint, ResourceStore, Task, arn, endpoint_url, new_id
from opendms.service import TaskService
from opendms.state import TableState, TaskStatus

TARGET_PREFIX = "AmazonDMSv20160101."
Body = dict[str, Any]


class DmsError(OpenDMSError):
    """An API error as DMS names it (``code``: its ``__type``)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def not_found(what: str) -> DmsError:
    return DmsError("ResourceNotFoundFault", f"{what} not found")


def bad_state(message: str) -> DmsError:
    return DmsError("InvalidResourceStateFault", message)


def bad_value(message: str) -> DmsError:
    return DmsError("InvalidParameterValueException", message)


class DmsApi:
    """The DMS operations of one server: its resources, its tasks and its region."""

    def __init__(
        self, resources: ResourceStore, service: TaskService, state: Path, region: str
    ) -> None:
        self.resources = resources
        self.service = service
        self.task_dir = state / "tasks"
        self.region = region
        self.connections: dict[str, Body] = {}

    def call(self, operation: str, body: Body) -> Body:
        """Run ``operation``; raises :class:`DmsError`."""
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise DmsError("UnknownOperationException", f"unknown operation {operation!r}")
        try:
            return handler(self, body)
        except DmsError as exc:
            exc.message = self._scrub(exc.message)
            raise
        except ConfigError as exc:
            raise bad_value(self._scrub(str(exc))) from None
        except OpenDMSError as exc:
            raise bad_state(self._scrub(str(exc))) from None

    def _scrub(self, text: str) -> str:
        """``text`` with every endpoint's password masked (errors may quote URLs)."""
        for e in self.resources.endpoints():
            text = _masked(text, e)
        return text

    # --- endpoints --------------------------------------------------------------------

    def endpoint(self, endpoint_arn: str) -> Endpoint:
        for e in self.resources.endpoints():
            if e.arn == endpoint_arn:
                return e
        raise not_found(f"endpoint {endpoint_arn}")

    def create_endpoint(self, body: Body) -> Body:
        ident = _required(body, "EndpointIdentifier")
        if any(e.identifier == ident for e in self.resources.endpoints()):
            raise DmsError("ResourceAlreadyExistsFault", f"endpoint {ident} already exists")
        endpoint = Endpoint(ident, arn(self.region, "endpoint", new_id()), "", "")
        endpoint.created_at = time.time()
        _apply_endpoint(endpoint, body)
        endpoint_url(endpoint)  # an unknown engine or a missing bucket fails here
        self.resources.put_endpoint(endpoint)
        return {"Endpoint": self._endpoint_out(endpoint)}

    def modify_endpoint(self, body: Body) -> Body:
        endpoint = self.endpoint(_required(body, "EndpointArn"))
        _apply_endpoint(endpoint, body)
        endpoint_url(endpoint)
        self.resources.put_endpoint(endpoint)
        return {"Endpoint": self._endpoint_out(endpoint)}

    def describe_endpoints(self, body: Body) -> Body:
        fields = {
            "endpoint-arn": lambda e: e.arn,
            "endpoint-type": lambda e: e.endpoint_type,
            "endpoint-id": lambda e: e.identifier,
            "engine-name": lambda e: e.engine_name,
        }
        found = _filtered(self.resources.endpoints(), body, fields)
        if not found and body.get("Filters"):
            raise not_found("endpoint")
        page, marker = _page(found, body)
        return _marked({"Endpoints": [self._endpoint_out(e) for e in page]}, marker)

    def delete_endpoint(self, body: Body) -> Body:
        endpoint = self.endpoint(_required(body, "EndpointArn"))
        users = [t.identifier for t in self.resources.tasks() if endpoint.arn in _ends(t)]
        if users:
            raise bad_state(f"endpoint {endpoint.identifier} is used by task(s) {users}")
        self.resources.delete_endpoint(endpoint.arn)
        out = self._endpoint_out(endpoint)
        out["Status"] = "deleting"
        return {"Endpoint": out}

    def _endpoint_out(self, e: Endpoint) -> Body:
        out: Body = {
            "EndpointIdentifier": e.identifier,
            "EndpointArn": e.arn,
            "EndpointType": e.endpoint_type.upper(),
            "EngineName": e.engine_name,
            "EngineDisplayName": e.engine_name,
            "Status": "active",
            "ServerName": e.server_name,
            "DatabaseName": e.database_name,
            "Username": e.username,
            "ExtraConnectionAttributes": e.extra_connection_attributes,
            "SslMode": "none",
        }
        if e.port:
            out["Port"] = e.port
        out.update(e.settings)
        return {k: v for k, v in out.items() if v != ""}

    # --- connections ------------------------------------------------------------------

    def test_connection(self, body: Body) -> Body:
        endpoint = self.endpoint(_required(body, "EndpointArn"))
        url, settings = endpoint_url(endpoint)
        try:
            check_endpoint(url, settings)
            status, message = "successful", ""
        except OpenDMSError as exc:
            status, message = "failed", _masked(str(exc), endpoint)
        conn = {
            "ReplicationInstanceArn": body.get("ReplicationInstanceArn", self._instance_arn()),
            "EndpointArn": endpoint.arn,
            "EndpointIdentifier": endpoint.identifier,
            "ReplicationInstanceIdentifier": "opendms",
            "Status": status,
        }
        if message:
            conn["LastFailureMessage"] = message
        self.connections[endpoint.arn] = conn
        return {"Connection": conn}

    def describe_connections(self, body: Body) -> Body:
        fields = {
            "endpoint-arn": lambda c: c["EndpointArn"],
            "replication-instance-arn": lambda c: c["ReplicationInstanceArn"],
        }
        found = _filtered(list(self.connections.values()), body, fields)
        page, marker = _page(found, body)
        return _marked({"Connections": page}, marker)

    def describe_replication_instances(self, body: Body) -> Body:
        return {
            "ReplicationInstances": [
                {
                    "ReplicationInstanceIdentifier": "opendms",
                    "ReplicationInstanceArn": self._instance_arn(),
                    "ReplicationInstanceClass": "opendms.local",
                    "ReplicationInstanceStatus": "available",
                    "EngineVersion": _version(),
                    "PubliclyAccessible": False,
                }
            ]
        }

    def _instance_arn(self) -> str:
        return arn(self.region, "rep", "OPENDMS")

    # --- tasks ------------------------------------------------------------------------

    def task(self, task_arn: str) -> Task:
        for t in self.resources.tasks():
            if t.arn == task_arn:
                return t
        raise not_found(f"replication task {task_arn}")

    def create_replication_task(self, body: Body) -> Body:
        ident = _required(body, "ReplicationTaskIdentifier")
        if any(t.identifier == ident for t in self.resources.tasks()):
            raise DmsError("ResourceAlreadyExistsFault", f"task {ident} already exists")
        task = Task(
            ident,
            arn(self.region, "task", new_id()),
            _required(body, "SourceEndpointArn"),
            _required(body, "TargetEndpointArn"),
            _required(body, "MigrationType"),
            _required(body, "TableMappings"),
            body.get("ReplicationTaskSettings", ""),
            time.time(),
        )
        self._define(task, replace=False)
        self.resources.put_task(task)
        return {"ReplicationTask": self._task_out(task)}

    def modify_replication_task(self, body: Body) -> Body:
        task = self.task(_required(body, "ReplicationTaskArn"))
        for key, attr in (
            ("MigrationType", "migration_type"),
            ("TableMappings", "table_mappings"),
            ("ReplicationTaskSettings", "task_settings"),
        ):
            if key in body:
                setattr(task, attr, body[key])
        self._define(task, replace=True)
        self.resources.put_task(task)
        return {"ReplicationTask": self._task_out(task)}

    def _define(self, task: Task, *, replace: bool) -> None:
        """Write ``task``'s task file and record it in the TaskService (the CLI's)."""
        spec = self._spec(task)
        self.task_dir.mkdir(parents=True, exist_ok=True)
        file = self.task_dir / f"{task.identifier}.json"
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds passwords
        with os.fdopen(fd, "w") as out:
            out.write(spec.model_dump_json(by_alias=True, exclude_none=True))
        self.service.create(spec, file=file, replace=replace)

    def _spec(self, task: Task) -> TaskSpec:
        source_url, source_settings = endpoint_url(self.endpoint(task.source_arn))
        target_url, target_settings = endpoint_url(self.endpoint(task.target_arn))
        doc = {
            "name": task.identifier,
            "source": {"url": source_url, "settings": source_settings},
            "target": {"url": target_url, "settings": target_settings},
            "migration_type": task.migration_type,
            "table_mappings": _json(task.table_mappings, "TableMappings"),
            "state": str(self.service.state_path),
        }
        if task.task_settings:
            doc["task_settings"] = _json(task.task_settings, "ReplicationTaskSettings")
        try:
            return TaskSpec.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise bad_value(f"{json_path(tuple(first['loc']))}: {first['msg']}") from None

    def describe_replication_tasks(self, body: Body) -> Body:
        fields = {
            "replication-task-arn": lambda t: t.arn,
            "replication-task-id": lambda t: t.identifier,
            "migration-type": lambda t: t.migration_type,
            "endpoint-arn": lambda t: _ends(t),
        }
        found = _filtered(self.resources.tasks(), body, fields)
        if not found and body.get("Filters"):
            raise not_found("replication task")
        page, marker = _page(found, body)
        settings = not body.get("WithoutSettings", False)
        return _marked({"ReplicationTasks": [self._task_out(t, settings) for t in page]}, marker)

    def start_replication_task(self, body: Body) -> Body:
        task = self.task(_required(body, "ReplicationTaskArn"))
        kind = _required(body, "StartReplicationTaskType")
        self._check_not_running(task)
        launch = {
            "start-replication": self.service.start,
            "resume-processing": self.service.resume,
            "reload-target": self.service.reload,
        }.get(kind)
        if launch is None:
            raise bad_value(f"StartReplicationTaskType {kind!r} is not one of {_START_TYPES}")
        launch(task.identifier)
        task.last_start, task.last_stop = time.time(), None
        self.resources.put_task(task)
        return {"ReplicationTask": self._task_out(task)}

    def _check_not_running(self, task: Task) -> None:
        status = self.service.record(task.identifier).status
        if status in (TaskStatus.STARTING, TaskStatus.RUNNING, TaskStatus.STOPPING):
            raise bad_state(f"task {task.identifier} is {status.value}")

    def stop_replication_task(self, body: Body) -> Body:
        task = self.task(_required(body, "ReplicationTaskArn"))
        status = self.service.record(task.identifier).status
        if status not in (TaskStatus.STARTING, TaskStatus.RUNNING):
            raise bad_state(f"task {task.identifier} is {status.value}, not running")
        self.service.stop(task.identifier)
        task.last_stop = time.time()
        self.resources.put_task(task)
        return {"ReplicationTask": self._task_out(task)}

    def delete_replication_task(self, body: Body) -> Body:
        task = self.task(_required(body, "ReplicationTaskArn"))
        self._check_not_running(task)
        out = self._task_out(task)
        self.service.delete(task.identifier)
        self.resources.delete_task(task.arn)
        (self.task_dir / f"{task.identifier}.json").unlink(missing_ok=True)
        out["Status"] = "deleting"
        return {"ReplicationTask": out}

    def reload_tables(self, body: Body) -> Body:
        task = self.task(_required(body, "ReplicationTaskArn"))
        self._check_not_running(task)
        self.service.reload(task.identifier)
        return {"ReplicationTaskArn": task.arn}

    def describe_table_statistics(self, body: Body) -> Body:
        task = self.task(_required(body, "ReplicationTaskArn"))
        rows = [_table_out(s) for s in self.service.tables(task.identifier)]
        fields = {
            "schema-name": lambda r: r["SchemaName"],
            "table-name": lambda r: r["TableName"],
            "table-state": lambda r: r["TableState"],
        }
        page, marker = _page(_filtered(rows, body, fields), body)
        return _marked({"ReplicationTaskArn": task.arn, "TableStatistics": page}, marker)

    def _task_out(self, task: Task, settings: bool = True) -> Body:
        record = self.service.record(task.identifier)
        tables = self.service.tables(task.identifier)
        out: Body = {
            "ReplicationTaskIdentifier": task.identifier,
            "ReplicationTaskArn": task.arn,
            "SourceEndpointArn": task.source_arn,
            "TargetEndpointArn": task.target_arn,
            "ReplicationInstanceArn": self._instance_arn(),
            "MigrationType": task.migration_type,
            "TableMappings": task.table_mappings,
            "Status": record.status.value,
            "ReplicationTaskCreationDate": task.created_at,
            "ReplicationTaskStats": _stats(task, tables),
        }
        if settings and task.task_settings:
            out["ReplicationTaskSettings"] = task.task_settings
        if record.stop_reason:
            out["StopReason"] = record.stop_reason
        if task.last_start is not None:
            out["ReplicationTaskStartDate"] = task.last_start
        return out


OPERATIONS = {
    "CreateEndpoint": DmsApi.create_endpoint,
    "ModifyEndpoint": DmsApi.modify_endpoint,
    "DescribeEndpoints": DmsApi.describe_endpoints,
    "DeleteEndpoint": DmsApi.delete_endpoint,
    "TestConnection": DmsApi.test_connection,
    "DescribeConnections": DmsApi.describe_connections,
    "DescribeReplicationInstances": DmsApi.describe_replication_instances,
    "CreateReplicationTask": DmsApi.create_replication_task,
    "ModifyReplicationTask": DmsApi.modify_replication_task,
    "DescribeReplicationTasks": DmsApi.describe_replication_tasks,
    "StartReplicationTask": DmsApi.start_replication_task,
    "StopReplicationTask": DmsApi.stop_replication_task,
    "DeleteReplicationTask": DmsApi.delete_replication_task,
    "ReloadTables": DmsApi.reload_tables,
    "DescribeTableStatistics": DmsApi.describe_table_statistics,
}
_START_TYPES = "start-replication, resume-processing, reload-target"


def _apply_endpoint(endpoint: Endpoint, body: Body) -> None:
    simple = {
        "EndpointType": "endpoint_type",
        "EngineName": "engine_name",
        "ServerName": "server_name",
        "Port": "port",
        "DatabaseName": "database_name",
        "Username": "username",
        "Password": "password",
        "ExtraConnectionAttributes": "extra_connection_attributes",
    }
    for key, attr in simple.items():
        if key in body:
            value = body[key]
            setattr(endpoint, attr, value.lower() if key == "EndpointType" else value)
    for key in ("S3Settings", "PostgreSQLSettings", "MySQLSettings"):
        if key in body:
            endpoint.settings[key] = dict(body[key])
    if endpoint.endpoint_type not in ("source", "target"):
        raise bad_value("EndpointType must be source or target")
    if not endpoint.engine_name:
        raise bad_value("EngineName is required")


def _stats(task: Task, tables: list[Any]) -> Body:
    count = {state: sum(1 for t in tables if t.state is state) for state in TableState}
    done = count[TableState.COMPLETED]
    stats: Body = {
        "FullLoadProgressPercent": int(100 * done / len(tables)) if tables else 0,
        "ElapsedTimeMillis": _elapsed(task),
        "TablesLoaded": done,
        "TablesLoading": count[TableState.FULL_LOAD],
        "TablesQueued": count[TableState.BEFORE_LOAD],
        "TablesErrored": count[TableState.ERROR],
    }
    if task.last_start is not None:
        stats["StartDate"] = task.last_start
    if task.last_stop is not None:
        stats["StopDate"] = task.last_stop
    return stats


def _elapsed(task: Task) -> int:
    if task.last_start is None:
        return 0
    return int(1000 * ((task.last_stop or time.time()) - task.last_start))


def _table_out(s: Any) -> Body:
    return {
        "SchemaName": s.schema,
        "TableName": s.name,
        "TableState": s.state.value,
        "FullLoadRows": s.full_load_rows,
        "FullLoadErrorRows": s.error_rows,
        "Inserts": s.inserts,
        "Updates": s.updates,
        "Deletes": s.deletes,
        "Ddls": s.ddls,
        "AppliedInserts": s.inserts,
        "AppliedUpdates": s.updates,
        "AppliedDeletes": s.deletes,
        "AppliedDdls": s.ddls,
        "ValidationState": "Not enabled",
    }


def _ends(task: Task) -> list[str]:
    return [task.source_arn, task.target_arn]


def _required(body: Body, key: str) -> Any:
    value = body.get(key)
    if value in (None, ""):
        raise bad_value(f"{key} is required")
    return value


def _json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_value(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _filtered(items: list[Any], body: Body, fields: dict[str, Callable[[Any], Any]]) -> list[Any]:
    for f in body.get("Filters") or []:
        get = fields.get(f.get("Name", ""))
        if get is None:
            raise bad_value(f"filter {f.get('Name')!r} is not one of {sorted(fields)}")
        wanted = set(f.get("Values") or [])
        items = [i for i in items if _matches(get(i), wanted)]
    return items


def _matches(value: Any, wanted: set[str]) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(str(v) in wanted or str(v).lower() in wanted for v in values)


def _page(items: list[Any], body: Body) -> tuple[list[Any], str]:
    start = int(body.get("Marker") or 0)
    size = int(body.get("MaxRecords") or 100)
    if not 20 <= size <= 100:
        raise bad_value("MaxRecords must be between 20 and 100")
    end = start + size
    return items[start:end], str(end) if end < len(items) else ""


def _marked(out: Body, marker: str) -> Body:
    if marker:
        out["Marker"] = marker
    return out


def _masked(text: str, endpoint: Endpoint) -> str:
    return text.replace(endpoint.password, "****") if endpoint.password else text


def _version() -> str:
    from importlib.metadata import version

    return version("opendms")
