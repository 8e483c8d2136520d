"""The shapes of the DMS JSON API: its faults, the Filters/Marker/MaxRecords of Describe
calls, and the response objects built from opendms's records."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from opendms.errors import OpenDMSError
from opendms.server.resources import ENV_PREFIX, SETTINGS_KEYS, Endpoint, Task
from opendms.state import TableState

Body = dict[str, Any]


class DmsError(OpenDMSError):
    """An API error as DMS names it (``code``: its ``__type``; ``path``: the JSON path of
    the bad field, when one is to blame)."""

    def __init__(self, code: str, message: str, status: int = 400, path: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.path = path


def not_found(what: str) -> DmsError:
    return DmsError("ResourceNotFoundFault", f"{what} not found")


def bad_state(message: str) -> DmsError:
    return DmsError("InvalidResourceStateFault", message)


def bad_value(message: str, path: str | None = None) -> DmsError:
    return DmsError("InvalidParameterValueException", message, path=path)


def apply_endpoint(endpoint: Endpoint, body: Body) -> None:
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
    for key in SETTINGS_KEYS:
        if key in body:
            endpoint.settings[key] = dict(body[key])
    if endpoint.endpoint_type not in ("source", "target"):
        raise bad_value("EndpointType must be source or target")
    if not endpoint.engine_name:
        raise bad_value("EngineName is required")


def stats(task: Task, tables: list[Any]) -> Body:
    count = {state: sum(1 for t in tables if t.state is state) for state in TableState}
    done = count[TableState.COMPLETED]
    stats: Body = {
        "FullLoadProgressPercent": int(100 * done / len(tables)) if tables else 0,
        "ElapsedTimeMillis": elapsed(task),
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


def elapsed(task: Task) -> int:
    if task.last_start is None:
        return 0
    return int(1000 * ((task.last_stop or time.time()) - task.last_start))


def validation_out(enabled: bool, row: Any | None) -> Body:
    """DMS's validation fields of a table's statistics, from its validation state row
    (``opendms.state.validation.ValidationStateRow``) when it has one."""
    if row is None:
        return {"ValidationState": "Pending records" if enabled else "Not enabled"}
    return {
        "ValidationState": row.state,
        "ValidationStateDetails": row.message,
        "ValidationFailedRecords": row.mismatches,
        "ValidationPendingRecords": 0,
        "ValidationSuspendedRecords": 0,
    }


def table_out(s: Any, validation: Body | None = None) -> Body:
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
        **(validation or {"ValidationState": "Not enabled"}),
    }


def ends(task: Task) -> list[str]:
    return [task.source_arn, task.target_arn]


def required(body: Body, key: str) -> Any:
    value = body.get(key)
    if value in (None, ""):
        raise bad_value(f"{key} is required")
    return value


def parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad_value(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def filtered(items: list[Any], body: Body, fields: dict[str, Callable[[Any], Any]]) -> list[Any]:
    for f in body.get("Filters") or []:
        get = fields.get(f.get("Name", ""))
        if get is None:
            raise bad_value(f"filter {f.get('Name')!r} is not one of {sorted(fields)}")
        wanted = set(f.get("Values") or [])
        items = [i for i in items if matches(get(i), wanted)]
    return items


def matches(value: Any, wanted: set[str]) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(str(v) in wanted or str(v).lower() in wanted for v in values)


def one_page(items: list[Any], body: Body) -> tuple[list[Any], str]:
    try:
        start = int(body.get("Marker") or 0)
        size = int(body.get("MaxRecords") or 100)
    except (TypeError, ValueError):
        raise bad_value("Marker and MaxRecords must be numbers (a Marker from a reply)") from None
    if not 20 <= size <= 100:
        raise bad_value("MaxRecords must be between 20 and 100")
    end = start + size
    return items[start:end], str(end) if end < len(items) else ""


def marked(out: Body, marker: str) -> Body:
    if marker:
        out["Marker"] = marker
    return out


def masked(text: str, endpoint: Endpoint) -> str:
    """``text`` without the endpoint's password (an ``env:`` one's value too)."""
    secrets = [endpoint.password]
    if endpoint.password.startswith(ENV_PREFIX):
        secrets.append(os.environ.get(endpoint.password[len(ENV_PREFIX) :], ""))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "****").replace(quote(secret, safe=""), "****")
    return text


SECRET_WORDS = ("password", "secret", "token")


def secret_free(settings: dict[str, Any]) -> dict[str, Any]:
    """Endpoint settings with the values of secret keys (passwords, secret access keys,
    tokens) replaced by ``****``, nested objects too."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out[key] = secret_free(value)
        elif any(w in key.lower() for w in SECRET_WORDS):
            out[key] = "****"
        else:
            out[key] = value
    return out


def version() -> str:
    from importlib.metadata import version

    return version("opendms")
