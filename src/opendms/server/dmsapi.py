"""The AWS DMS JSON 1.1 API: ``X-Amz-Target: AmazonDMSv20160101.<Operation>``.

:class:`DmsApi` maps each operation to :class:`~opendms.service.TaskService` and the
server's :class:`~opendms.server.resources.ResourceStore`. A fault is a :class:`DmsError`
carrying DMS's ``__type``; the application answers it with HTTP 400 as AWS does.
Passwords are never part of a response or an error message.

The API is called from several threads at once. Changes to the records take a short
lock; a task's lifecycle calls (start, stop, modify, delete) take that task's own lock,
so a slow one never holds up other tasks or reads. ``StopReplicationTask`` asks the
task's process to stop and answers ``stopping`` at once; a background thread waits for
the process to end (the task shows ``stopping`` meanwhile)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from opendms.config import TaskSpec, task_from_dict
from opendms.endpoints import check_endpoint
from opendms.errors import ConfigError, OpenDMSError
from opendms.server.assessments import AssessmentRuns
from opendms.server.resources import Endpoint, ResourceStore, Task, arn, endpoint_url, new_id
from opendms.server.shapes import (
    Body,
    DmsError,
    apply_endpoint,
    bad_state,
    bad_value,
    ends,
    filtered,
    marked,
    masked,
    not_found,
    one_page,
    parse_json,
    required,
    secret_free,
    stats,
    table_out,
    validation_out,
    version,
)
from opendms.service import TaskService
from opendms.state import TaskRecord, TaskStatus
from opendms.state.status import ACTIVE

TARGET_PREFIX = "AmazonDMSv20160101."
START_TYPES = "start-replication, resume-processing, reload-target"
log = logging.getLogger(__name__)


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
        self.assessments = AssessmentRuns(state / "assessments")
        self.stopping: set[str] = set()  # tasks whose stop a background thread awaits
        self.stop_timeout = 120.0
        self._lock = threading.RLock()  # the records: check-then-change
        self._task_locks: dict[str, threading.Lock] = {}
        service.store  # noqa: B018 - opened now, not by two threads at once

    def call(self, operation: str, body: Body) -> Body:
        """Run ``operation``; raises :class:`DmsError`."""
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise DmsError("UnknownOperationException", f"unknown operation {operation!r}")
        out: Body = self.guarded(handler, self, body)
        return out

    def guarded(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` with opendms errors as :class:`DmsError` faults, passwords
        masked."""
        try:
            return fn(*args)
        except DmsError as exc:
            exc.message = self.scrub(exc.message)
            raise
        except ConfigError as exc:
            raise bad_value(self.scrub(str(exc)), exc.path or None) from None
        except OpenDMSError as exc:
            raise bad_state(self.scrub(str(exc))) from None
        except (ValueError, OSError) as exc:  # a path or value the system refuses
            raise bad_value(self.scrub(f"{type(exc).__name__}: {exc}")) from None

    @contextmanager
    def task_lock(self, name: str) -> Iterator[None]:
        """Hold task ``name``'s lifecycle lock."""
        with self._lock:
            lock = self._task_locks.setdefault(name, threading.Lock())
        with lock:
            yield

    def scrub(self, text: str) -> str:
        """``text`` with every endpoint's password masked (errors may quote URLs)."""
        for e in self.resources.endpoints():
            text = masked(text, e)
        return text

    # --- endpoints --------------------------------------------------------------------

    def endpoint(self, endpoint_arn: str) -> Endpoint:
        for e in self.resources.endpoints():
            if e.arn == endpoint_arn:
                return e
        raise not_found(f"endpoint {endpoint_arn}")

    def endpoint_named(self, ident: str) -> Endpoint:
        """The endpoint whose identifier is ``ident``."""
        for e in self.resources.endpoints():
            if e.identifier == ident:
                return e
        raise not_found(f"endpoint {ident}")

    def create_endpoint(self, body: Body) -> Body:
        ident = required(body, "EndpointIdentifier")
        with self._lock:
            if any(e.identifier == ident for e in self.resources.endpoints()):
                raise DmsError("ResourceAlreadyExistsFault", f"endpoint {ident} already exists")
            endpoint = Endpoint(ident, arn(self.region, "endpoint", new_id()), "", "")
            endpoint.created_at = time.time()
            apply_endpoint(endpoint, body)
            endpoint_url(endpoint, resolve=False)  # an unknown engine, no bucket: fails
            self.resources.put_endpoint(endpoint)
        return {"Endpoint": self._endpoint_out(endpoint)}

    def modify_endpoint(self, body: Body) -> Body:
        """Change an endpoint and rewrite the task files of the tasks that use it (so
        their next start connects with the change); refused while one of them runs."""
        with self._lock:
            endpoint = self.endpoint(required(body, "EndpointArn"))
            users = [t for t in self.resources.tasks() if endpoint.arn in ends(t)]
            for task in users:
                self._check_not_running(task)
            before = replace(endpoint, settings=dict(endpoint.settings))
            apply_endpoint(endpoint, body)
            endpoint_url(endpoint, resolve=False)
            self.resources.put_endpoint(endpoint)
            try:
                for task in users:
                    self._spec(task)  # every user's task must still be valid
            except BaseException:
                self.resources.put_endpoint(before)
                raise
            for task in users:
                self._define(task, replace=True)
        return {"Endpoint": self._endpoint_out(endpoint)}

    def describe_endpoints(self, body: Body) -> Body:
        fields = {
            "endpoint-arn": lambda e: e.arn,
            "endpoint-type": lambda e: e.endpoint_type,
            "endpoint-id": lambda e: e.identifier,
            "engine-name": lambda e: e.engine_name,
        }
        found = filtered(self.resources.endpoints(), body, fields)
        if not found and body.get("Filters"):
            raise not_found("endpoint")
        page, marker = one_page(found, body)
        return marked({"Endpoints": [self._endpoint_out(e) for e in page]}, marker)

    def delete_endpoint(self, body: Body) -> Body:
        with self._lock:
            endpoint = self.endpoint(required(body, "EndpointArn"))
            users = [t.identifier for t in self.resources.tasks() if endpoint.arn in ends(t)]
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
        out.update(secret_free(e.settings))
        return {k: v for k, v in out.items() if v != ""}

    # --- connections ------------------------------------------------------------------

    def test_connection(self, body: Body) -> Body:
        endpoint = self.endpoint(required(body, "EndpointArn"))
        url, settings = endpoint_url(endpoint)
        try:
            check_endpoint(url, settings)
            status, message = "successful", ""
        except OpenDMSError as exc:
            status, message = "failed", masked(str(exc), endpoint)
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
        found = filtered(list(self.connections.values()), body, fields)
        page, marker = one_page(found, body)
        return marked({"Connections": page}, marker)

    def describe_replication_instances(self, body: Body) -> Body:
        return {
            "ReplicationInstances": [
                {
                    "ReplicationInstanceIdentifier": "opendms",
                    "ReplicationInstanceArn": self._instance_arn(),
                    "ReplicationInstanceClass": "opendms.local",
                    "ReplicationInstanceStatus": "available",
                    "EngineVersion": version(),
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

    def task_named(self, ident: str) -> Task:
        """The task whose identifier is ``ident``."""
        for t in self.resources.tasks():
            if t.identifier == ident:
                return t
        raise not_found(f"replication task {ident}")

    def create_replication_task(self, body: Body) -> Body:
        ident = required(body, "ReplicationTaskIdentifier")
        with self._lock:
            if any(t.identifier == ident for t in self.resources.tasks()):
                raise DmsError("ResourceAlreadyExistsFault", f"task {ident} already exists")
            task = Task(
                ident,
                arn(self.region, "task", new_id()),
                required(body, "SourceEndpointArn"),
                required(body, "TargetEndpointArn"),
                required(body, "MigrationType"),
                required(body, "TableMappings"),
                body.get("ReplicationTaskSettings", ""),
                time.time(),
                schedule=str(body.get("Schedule") or ""),
                schedule_type=str(body.get("ScheduleType") or ""),
            )
            self._define(task, replace=False)
            self.resources.put_task(task)
        return {"ReplicationTask": self._task_out(task)}

    def modify_replication_task(self, body: Body) -> Body:
        task = self.task(required(body, "ReplicationTaskArn"))
        with self.task_lock(task.identifier), self._lock:
            task = self.task(task.arn)
            self._check_not_running(task)
            for key, attr in (
                ("MigrationType", "migration_type"),
                ("TableMappings", "table_mappings"),
                ("ReplicationTaskSettings", "task_settings"),
                ("Schedule", "schedule"),  # not DMS's: the REST API's
                ("ScheduleType", "schedule_type"),
            ):
                if key in body:
                    setattr(task, attr, body[key] or "")
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
        """The task file of ``task``, validated as the CLI validates one (table mappings,
        task settings, endpoint URLs); a bad field is named by its JSON path."""
        source_url, source_settings = endpoint_url(self.endpoint(task.source_arn))
        target_url, target_settings = endpoint_url(self.endpoint(task.target_arn))
        doc = {
            "name": task.identifier,
            "source": {"url": source_url, "settings": source_settings},
            "target": {"url": target_url, "settings": target_settings},
            "migration_type": task.migration_type,
            "table_mappings": parse_json(task.table_mappings, "TableMappings"),
            "state": str(self.service.state_path),
        }
        if task.schedule:
            doc["schedule"] = task.schedule
            doc["schedule_type"] = task.schedule_type or "reload-target"
        if task.task_settings:
            doc["task_settings"] = parse_json(task.task_settings, "ReplicationTaskSettings")
        try:
            return task_from_dict(doc, where="task")
        except ConfigError as exc:
            raise _spec_fault(exc) from None

    def describe_replication_tasks(self, body: Body) -> Body:
        fields = {
            "replication-task-arn": lambda t: t.arn,
            "replication-task-id": lambda t: t.identifier,
            "migration-type": lambda t: t.migration_type,
            "endpoint-arn": lambda t: ends(t),
        }
        found = filtered(self.resources.tasks(), body, fields)
        if not found and body.get("Filters"):
            raise not_found("replication task")
        page, marker = one_page(found, body)
        settings = not body.get("WithoutSettings", False)
        return marked({"ReplicationTasks": [self._task_out(t, settings) for t in page]}, marker)

    def start_replication_task(self, body: Body) -> Body:
        task = self.task(required(body, "ReplicationTaskArn"))
        kind = required(body, "StartReplicationTaskType")
        launch = {
            "start-replication": self.service.start,
            "resume-processing": self.service.resume,
            "reload-target": self.service.reload,
        }.get(kind)
        if launch is None:
            raise bad_value(f"StartReplicationTaskType {kind!r} is not one of {START_TYPES}")
        with self.task_lock(task.identifier):
            task = self.task(task.arn)
            self._check_not_running(task)
            with self._lock:  # the task file again: endpoint changes, env: passwords
                self._define(task, replace=True)
            launch(task.identifier)
            task.last_start, task.last_stop = time.time(), None
            self.resources.put_task(task)
        return {"ReplicationTask": self._task_out(task)}

    def _check_not_running(self, task: Task) -> None:
        if task.identifier in self.stopping:
            raise bad_state(f"task {task.identifier} is stopping")
        status = self.service.fresh_record(task.identifier).status
        if status in ACTIVE:
            raise bad_state(f"task {task.identifier} is {status.value}")

    def stop_replication_task(self, body: Body) -> Body:
        task = self.task(required(body, "ReplicationTaskArn"))
        with self.task_lock(task.identifier):
            status = self.service.fresh_record(task.identifier).status
            if task.identifier in self.stopping or status not in ACTIVE:
                shown = "stopping" if task.identifier in self.stopping else status.value
                raise bad_state(f"task {task.identifier} is {shown}, not running")
            self.stopping.add(task.identifier)
        threading.Thread(
            target=self._await_stop, args=(task.arn, task.identifier), daemon=True
        ).start()
        return {"ReplicationTask": self._task_out(task)}

    def _await_stop(self, task_arn: str, name: str) -> None:
        """Stop task ``name``'s process and wait for it (a background thread)."""
        try:
            self.service.stop(name, timeout=self.stop_timeout)
        except OpenDMSError as exc:
            log.warning("stopping task %s: %s", name, self.scrub(str(exc)))
        finally:
            with self.task_lock(name), self._lock:
                self.stopping.discard(name)
                for task in self.resources.tasks():
                    if task.arn == task_arn:
                        task.last_stop = time.time()
                        self.resources.put_task(task)

    def delete_replication_task(self, body: Body) -> Body:
        task = self.task(required(body, "ReplicationTaskArn"))
        with self.task_lock(task.identifier):
            task = self.task(task.arn)
            self._check_not_running(task)
            out = self._task_out(task)
            self.service.delete(task.identifier)
            with self._lock:
                self.resources.delete_task(task.arn)
            (self.task_dir / f"{task.identifier}.json").unlink(missing_ok=True)
        out["Status"] = "deleting"
        return {"ReplicationTask": out}

    def reload_tables(self, body: Body) -> Body:
        task = self.task(required(body, "ReplicationTaskArn"))
        with self.task_lock(task.identifier):
            self._check_not_running(task)
            self.service.reload(task.identifier)
        return {"ReplicationTaskArn": task.arn}

    def describe_table_statistics(self, body: Body) -> Body:
        task = self.task(required(body, "ReplicationTaskArn"))
        enabled = _validation_enabled(task)
        checked = {(v.schema, v.name): v for v in self._validations(task) if enabled}
        rows = [
            table_out(s, validation_out(enabled, checked.get((s.schema, s.name))))
            for s in self.service.tables(task.identifier)
        ]
        fields = {
            "schema-name": lambda r: r["SchemaName"],
            "table-name": lambda r: r["TableName"],
            "table-state": lambda r: r["TableState"],
        }
        page, marker = one_page(filtered(rows, body, fields), body)
        return marked({"ReplicationTaskArn": task.arn, "TableStatistics": page}, marker)

    def _validations(self, task: Task) -> list[Any]:
        from opendms.state import validation as vstate

        store = cast(Any, self.service.store)
        vstate.ensure_tables(store)  # no validation has run on this state file yet
        return vstate.states(store, task.identifier)

    def status_of(self, task: Task, record: TaskRecord) -> str:
        """The task's status as shown: ``stopping`` while a stop is awaited."""
        if task.identifier in self.stopping:
            return TaskStatus.STOPPING.value
        return record.status.value

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
            "Status": self.status_of(task, record),
            "ReplicationTaskCreationDate": task.created_at,
            "ReplicationTaskStats": stats(task, tables),
        }
        if settings and task.task_settings:
            out["ReplicationTaskSettings"] = task.task_settings
        if record.stop_reason:
            out["StopReason"] = record.stop_reason
        if record.status is TaskStatus.FAILED:  # ops: why the task failed, as DMS says
            out["LastFailureMessage"] = record.stop_reason or "failed"
        if task.last_start is not None:
            out["ReplicationTaskStartDate"] = task.last_start
        return out


def _validation_enabled(task: Task) -> bool:
    try:
        settings = json.loads(task.task_settings or "{}")
        return bool(settings.get("ValidationSettings", {}).get("EnableValidation"))
    except (ValueError, AttributeError):
        return False


def _spec_fault(exc: ConfigError) -> DmsError:
    """A task definition's ConfigError as a fault with the JSON path of the bad field
    (``$.table_mappings.rules[0]...``, ``$.task_settings.Logging...``)."""
    path = exc.path or "$"
    if exc.where.endswith("table_mappings") and not path.startswith("$.table_mappings"):
        path = "$.table_mappings" + path[1:]
    prefix = ": ".join(p for p in (exc.where, exc.path) if p)
    message = exc.message[len(prefix) + 2 :] if prefix else exc.message
    return bad_value(f"{path}: {message}", path)


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


def _add_assessment_operations() -> None:
    from opendms.server import dmsassess

    OPERATIONS.update(dmsassess.OPERATIONS)


_add_assessment_operations()
