"""What the web console shows, read through the server's DMS layer (:class:`DmsApi`) and
task service: endpoint and task rows, a task's phase, table statistics, data errors,
validation failures and the task's log. Plain data for the templates; no HTTP here."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opendms.server.dmsapi import DmsApi
from opendms.server.shapes import Body
from opendms.state import StateStore, TableState
from opendms.state import validation as vstate
from opendms.state.views import progress

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_LETTER = {"DEBUG": "D", "INFO": "I", "WARNING": "W", "ERROR": "E"}
_NAME = {letter: name for name, letter in _LETTER.items()}
LOG_LINES = 300  # the most log lines a page shows


def pages(call: Any, key: str, body: Body | None = None) -> Iterator[Body]:
    """Every item of a paged Describe call (``call(body)``), following its Marker."""
    request = dict(body or {}, MaxRecords=100)
    while True:
        out = call(request)
        yield from out.get(key, [])
        if not out.get("Marker"):
            return
        request["Marker"] = out["Marker"]


def endpoint_rows(api: DmsApi) -> list[Body]:
    """Every endpoint as DescribeEndpoints shows it (no password), with its last
    connection test."""
    tested = {c["EndpointArn"]: c for c in api.describe_connections({}).get("Connections", [])}
    rows = []
    for e in pages(api.describe_endpoints, "Endpoints"):
        conn = tested.get(e["EndpointArn"], {})
        rows.append(
            e
            | {
                "TestStatus": conn.get("Status", ""),
                "TestMessage": conn.get("LastFailureMessage", ""),
            }
        )
    return rows


def endpoint_by_id(api: DmsApi, ident: str) -> Body:
    """One endpoint by identifier (ResourceNotFoundFault otherwise)."""
    flt = [{"Name": "endpoint-id", "Values": [ident]}]
    found: Body = api.describe_endpoints({"Filters": flt})["Endpoints"][0]
    return found


def task_by_id(api: DmsApi, ident: str) -> Body:
    """One replication task by identifier (ResourceNotFoundFault otherwise)."""
    flt = [{"Name": "replication-task-id", "Values": [ident]}]
    found: Body = api.describe_replication_tasks({"Filters": flt})["ReplicationTasks"][0]
    return found


def derive_phase(status: str, phase: str, states: list[str], migration_type: str) -> str:
    """DMS's phase of a task: full load, applying cached changes or ongoing replication
    (as the run recorded it, else from its tables' states); the status when not running."""
    if status not in ("starting", "running"):
        return status
    if phase:
        return phase
    loading = {TableState.BEFORE_LOAD.value, TableState.FULL_LOAD.value}
    if migration_type != "cdc" and (not states or any(s in loading for s in states)):
        return "full load"
    return "ongoing replication" if migration_type != "full-load" else "full load"


def task_rows(api: DmsApi) -> list[Body]:
    """Every task with the DMS console's columns."""
    names = {
        e["EndpointArn"]: e["EndpointIdentifier"]
        for e in pages(api.describe_endpoints, "Endpoints")
    }
    return [
        _task_row(api, t, names)
        for t in pages(
            api.describe_replication_tasks, "ReplicationTasks", {"WithoutSettings": True}
        )
    ]


def _task_row(api: DmsApi, task: Body, names: dict[str, str]) -> Body:
    ident = task["ReplicationTaskIdentifier"]
    record = api.service.record(ident)
    tables = api.service.tables(ident)
    latency = record.metrics.get("source_latency_s")
    cdc = task["MigrationType"] != "full-load" and task["Status"] == "running"
    return {
        "id": ident,
        "status": task["Status"],
        "stop_reason": task.get("StopReason", ""),
        "progress": progress(record, tables),
        "type": task["MigrationType"],
        "source": names.get(task["SourceEndpointArn"], task["SourceEndpointArn"]),
        "target": names.get(task["TargetEndpointArn"], task["TargetEndpointArn"]),
        "latency": f"{latency:.1f} s" if cdc and latency is not None else "",
        "phase": derive_phase(
            task["Status"], record.phase, [t.state.value for t in tables], task["MigrationType"]
        ),
        "metrics": record.metrics,
    }


@dataclass
class TaskDetail:
    """A task's page: its row, settings, table statistics, data errors and validation."""

    row: Body
    task: Body
    tables: list[Body]
    errors: list[Body]
    validation_enabled: bool
    failures: list[Body] = field(default_factory=list)
    validation_states: dict[str, str] = field(default_factory=dict)
    assessment: Body | None = None  # the latest premigration assessment run


def task_detail(api: DmsApi, ident: str) -> TaskDetail:
    task = task_by_id(api, ident)
    names = {
        e["EndpointArn"]: e["EndpointIdentifier"]
        for e in pages(api.describe_endpoints, "Endpoints")
    }
    row = _task_row(api, task, names)
    tables = list(
        pages(
            api.describe_table_statistics,
            "TableStatistics",
            {"ReplicationTaskArn": task["ReplicationTaskArn"]},
        )
    )
    errors = [vars(e) for e in api.service.errors(ident)]
    states, failures = _validation(api, ident)
    per_table: dict[str, int] = {}
    for e in errors:
        per_table[e["table"]] = per_table.get(e["table"], 0) + 1
    enabled = _validation_enabled(task.get("ReplicationTaskSettings", ""))
    failed = {f["key"] + f["table"]: f["table"] for f in failures}
    for t in tables:
        qualified = f"{t['SchemaName']}.{t['TableName']}"
        t["Errors"] = per_table.get(qualified, 0) + int(t.get("FullLoadErrorRows", 0))
        t["ValidationState"] = _validation_state(qualified, states, list(failed.values()), enabled)
    return TaskDetail(row, task, tables, errors, enabled, failures, states, _assessment(api, task))


def _assessment(api: DmsApi, task: Body) -> Body | None:
    """The task's latest assessment run: its status, time and checks."""
    run = api.assessments.latest_of(task["ReplicationTaskArn"])
    if run is None:
        return None
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
    return {"status": run.status, "at": when, "failure": run.failure, "checks": run.checks}


def _validation_state(table: str, states: dict[str, str], failed: list[str], on: bool) -> str:
    """A table's validation state: its recorded one, mismatched records found while
    changes were applied, pending, or not enabled."""
    mismatched = failed.count(table)
    if mismatched:
        return f"Mismatched records ({mismatched})"
    return states.get(table) or ("Pending validation" if on else "Not enabled")


def _validation_enabled(settings: str) -> bool:
    try:
        doc = json.loads(settings or "{}")
    except ValueError:
        return False
    block = doc.get("ValidationSettings") if isinstance(doc, dict) else None
    return isinstance(block, dict) and bool(
        block.get("EnableValidation") or block.get("ValidationOnly")
    )


def _validation(api: DmsApi, ident: str) -> tuple[dict[str, str], list[Body]]:
    """The task's validation states by table and its failures, one row per differing
    column (source and target values side by side)."""
    store = api.service.store
    if not isinstance(store, StateStore):
        return {}, []
    try:
        states = {
            f"{s.schema}.{s.name}" if s.schema else s.name: s.state
            for s in vstate.states(store, ident)
        }
        found = vstate.failures(store, ident)
    except sqlite3.OperationalError:  # no validation ran in this state file yet
        return {}, []
    return states, [row for f in found[:500] for row in _failure_rows(f)]


def _failure_rows(f: vstate.FailureRow) -> Iterator[Body]:
    key = ", ".join(f"{k}={v}" for k, v in f.key.items())
    base = {"table": f.table, "key": key, "type": f.type}
    if f.type == "RECORD_DIFF":
        for column, pair in f.details.items():
            if isinstance(pair, dict):
                yield base | {
                    "column": column,
                    "source": _text(pair.get("source")),
                    "target": _text(pair.get("target")),
                }
        return
    source, target = f.details.get("source"), f.details.get("target")
    yield base | {
        "column": "(row)",
        "source": _text(source) if source is not None else "(missing)",
        "target": _text(target) if target is not None else "(missing)",
    }


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


# --- the task's log ---------------------------------------------------------------------


def task_log(state_file: Path, ident: str, level: str = "", query: str = "") -> list[Body]:
    """The last lines (at most LOG_LINES) of the task's log (``logs/NAME.log`` beside
    its state file, read by :func:`opendms.service.logs.read_task_log`) at ``level``
    (DEBUG, INFO, WARNING, ERROR) or above, containing ``query``; each
    ``{"level", "text"}``. None when the task has no log yet."""
    from opendms.service.logs import read_task_log

    if not (state_file.parent / "logs" / f"{ident}.log").is_file():
        return []
    wanted = _LETTER.get(level.upper())
    records = read_task_log(state_file, ident, level=wanted, search=query or None, limit=LOG_LINES)
    return [
        {
            "level": _NAME.get(r.level, "INFO"),
            "text": f"{r.time} [{r.component}] {r.message}",
        }
        for r in records
    ]


def has_log(state_file: Path, ident: str) -> bool:
    return (state_file.parent / "logs" / f"{ident}.log").is_file()
