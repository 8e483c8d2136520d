"""The REST API's translations: its request bodies to the DMS API's, and the server's
records to its response models (never a password)."""

from __future__ import annotations

import json
from typing import Any

from opendms.server.dmsapi import DmsApi
from opendms.server.resources import ENV_PREFIX, Endpoint, Task
from opendms.server.rest_models import (
    Cdc,
    ConnectionOut,
    EndpointOut,
    EndpointType,
    Progress,
    TableOut,
    TaskOut,
)
from opendms.server.shapes import Body, bad_value, secret_free, stats
from opendms.state import TableStats

ENDPOINT_KEYS = {
    "identifier": "EndpointIdentifier",
    "endpoint_type": "EndpointType",
    "engine_name": "EngineName",
    "server_name": "ServerName",
    "port": "Port",
    "database_name": "DatabaseName",
    "username": "Username",
    "password": "Password",
    "extra_connection_attributes": "ExtraConnectionAttributes",
}
KEEP_WHEN_NULL = ("identifier", "endpoint_type", "engine_name", "settings")


def endpoint_body(fields: dict[str, Any]) -> Body:
    """A CreateEndpoint/ModifyEndpoint body from the REST fields given (a null text field
    clears it; a null type, engine or settings leaves it as it is)."""
    body: Body = {}
    for key, value in fields.items():
        if value is None and key in KEEP_WHEN_NULL:
            continue
        if key == "settings":
            body.update({str(k): dict(v) for k, v in value.items()})
        elif key == "port":
            body["Port"] = value
        else:
            body[ENDPOINT_KEYS[key]] = "" if value is None else str(value)
    return body


def endpoint_out(api: DmsApi, e: Endpoint) -> EndpointOut:
    conn = api.connections.get(e.arn)
    env = e.password[len(ENV_PREFIX) :] if e.password.startswith(ENV_PREFIX) else None
    return EndpointOut(
        identifier=e.identifier,
        arn=e.arn,
        endpoint_type=EndpointType(e.endpoint_type),
        engine_name=e.engine_name,
        server_name=e.server_name or "",
        port=e.port,
        database_name=e.database_name or "",
        username=e.username or "",
        password_set=bool(e.password),
        password_env=env,
        extra_connection_attributes=e.extra_connection_attributes or "",
        settings=secret_free(e.settings),
        created_at=e.created_at,
        connection=None
        if conn is None
        else ConnectionOut(
            endpoint=e.identifier,
            status=conn["Status"],
            message=conn.get("LastFailureMessage"),
        ),
    )


def task_body(api: DmsApi, fields: dict[str, Any]) -> Body:
    """A CreateReplicationTask/ModifyReplicationTask body from the REST fields given."""
    body: Body = {}
    for key, role in (("source", "source"), ("target", "target")):
        if key in fields:
            body[f"{role.title()}EndpointArn"] = _endpoint_arn(api, fields[key], role)
    if fields.get("migration_type") is not None:
        body["MigrationType"] = str(fields["migration_type"])
    if fields.get("table_mappings") is not None:
        body["TableMappings"] = json.dumps(fields["table_mappings"])
    if "task_settings" in fields:
        settings = fields["task_settings"]
        body["ReplicationTaskSettings"] = json.dumps(settings) if settings else ""
    for key, name in (("schedule", "Schedule"), ("schedule_type", "ScheduleType")):
        if key in fields:
            body[name] = fields[key] or ""
    return body


def _endpoint_arn(api: DmsApi, ident: str, role: str) -> str:
    found = [e for e in api.resources.endpoints() if e.identifier == ident]
    if not found:
        raise bad_value(f"$.{role}: there is no endpoint {ident!r}", f"$.{role}")
    if found[0].endpoint_type != role:
        raise bad_value(
            f"$.{role}: endpoint {ident!r} is a {found[0].endpoint_type} endpoint", f"$.{role}"
        )
    return found[0].arn


def task_out(api: DmsApi, task: Task) -> TaskOut:
    record = api.service.record(task.identifier)
    tables = api.service.tables(task.identifier)
    numbers = stats(task, tables)
    names = {e.arn: e.identifier for e in api.resources.endpoints()}
    metrics = record.metrics or {}
    return TaskOut(
        identifier=task.identifier,
        arn=task.arn,
        status=api.status_of(task, record),
        stop_reason=record.stop_reason or None,
        migration_type=task.migration_type,
        source=names.get(task.source_arn),
        target=names.get(task.target_arn),
        table_mappings=_json(task.table_mappings),
        task_settings=_settings(task.task_settings),
        created_at=task.created_at,
        started_at=task.last_start,
        stopped_at=task.last_stop,
        progress=Progress(
            percent=numbers["FullLoadProgressPercent"],
            tables_loaded=numbers["TablesLoaded"],
            tables_loading=numbers["TablesLoading"],
            tables_queued=numbers["TablesQueued"],
            tables_errored=numbers["TablesErrored"],
            elapsed_ms=numbers["ElapsedTimeMillis"],
        ),
        cdc=Cdc(
            source_latency_s=metrics.get("source_latency_s"),
            target_latency_s=metrics.get("target_latency_s"),
            throughput_rows_s=metrics.get("throughput_rows_s"),
            incoming_changes=metrics.get("incoming_changes"),
            position=record.position or None,
        ),
        schedule=task.schedule or None,
        schedule_type=(task.schedule_type or "reload-target") if task.schedule else None,
    )


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _settings(text: str) -> dict[str, Any] | None:
    value = _json(text) if text else None
    return value if isinstance(value, dict) else None


def table_out(s: TableStats) -> TableOut:
    return TableOut(
        schema_name=s.schema,
        table_name=s.name,
        state=s.state.value,
        full_load_rows=s.full_load_rows,
        estimated_rows=s.estimated_rows,
        error_rows=s.error_rows,
        inserts=s.inserts,
        updates=s.updates,
        deletes=s.deletes,
        ddls=s.ddls,
        started_at=s.started_at,
        ended_at=s.ended_at,
        last_change_at=s.last_change_at,
        error=s.error or None,
    )
