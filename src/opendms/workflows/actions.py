"""The ``opendms:`` Task resources: what a workflow's Task states can do.

* ``opendms:sql``: a statement on an endpoint, with parameters; its rows as the result.
* ``opendms:export``: a query's rows to a CSV or Parquet file in a lake (seed 003's
  ``mysql_csv_to_s3``).
* ``opendms:import``: a lake file's rows into a table through an insert or upsert
  statement run once per row (seed 003's ``s3_to_mysql``).
* ``opendms:task.run``: a migration task run to its end in this process; its table
  statistics as the result.
* ``opendms:validate``: a task's target compared with its source (``opendms validate``);
  a mismatch fails the state with ``ValidationFailed``.
* ``opendms:query``: a federated query (``opendms query``) over the endpoints; its rows.

Endpoints and lakes are named as ``--endpoint NAME=URL`` gave them (so no password is
written in a definition or its history), or given as URLs. Statements take the driver's
placeholders: ``%s`` for PostgreSQL and MySQL/MariaDB, ``?`` for SQLite. Every resource
runs at least once when an execution is resumed after a crash (docs/workflows.md).
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opendms.endpoints import engine_for
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.engine import FileStore
from opendms.errors import ConfigError
from opendms.workflows.run import StatesError, python_resource

Payload = dict[str, Any]


class Actions:
    """Task resources: ``python:`` callables and the ``opendms:`` actions."""

    def __init__(self, endpoints: Mapping[str, str], state: Path | None = None) -> None:
        self.endpoints = dict(endpoints)
        self.state = state
        self.table: dict[str, Callable[[Payload], Any]] = {
            "sql": self.sql,
            "export": self.export,
            "import": self.import_rows,
            "task.run": self.task_run,
            "validate": self.validate,
            "query": self.query,
        }

    def __call__(self, resource: str, payload: Any) -> Any:
        if resource.startswith("python:"):
            return python_resource(resource, payload)
        action = self.table.get(resource.removeprefix("opendms:"))
        if not resource.startswith("opendms:") or action is None:
            known = ", ".join(f"opendms:{name}" for name in self.table)
            raise StatesError(
                "States.Runtime", f"no such resource: {resource} (known: {known}, python:…)"
            )
        if not isinstance(payload, dict):
            raise ConfigError(f"{resource}: its Parameters must be an object")
        return action(payload)

    # -- endpoints ---------------------------------------------------------------------

    def url(self, payload: Payload, field: str) -> EndpointURL:
        given = _text(payload, field)
        if "://" in given:
            return EndpointURL.parse(given)
        if given not in self.endpoints:
            names = ", ".join(sorted(self.endpoints)) or "none"
            raise ConfigError(
                f"{field} {given!r} is not an endpoint given with --endpoint NAME=URL "
                f"(given: {names})"
            )
        return EndpointURL.parse(self.endpoints[given])

    @contextlib.contextmanager
    def connection(self, payload: Payload) -> Iterator[Any]:
        url = self.url(payload, "Endpoint")
        conn = engine_for(url).connect(url)
        try:
            yield conn
        finally:
            conn.close()

    # -- the actions -------------------------------------------------------------------

    def sql(self, payload: Payload) -> dict[str, Any]:
        """``{"Endpoint", "Statement", "Parameters"?}`` -> ``{"Rows": [...], "RowCount"}``
        (a statement without rows: the rows it changed)."""
        with self.connection(payload) as conn:
            cursor = conn.cursor()
            cursor.execute(_text(payload, "Statement"), _params(payload))
            if cursor.description is None:
                count = cursor.rowcount
                conn.commit()
                return {"Rows": [], "RowCount": count}
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, map(_json_value, r), strict=True)) for r in cursor]
            conn.commit()
        return {"Rows": rows, "RowCount": len(rows)}

    def export(self, payload: Payload) -> dict[str, Any]:
        """``{"Endpoint", "Query", "Parameters"?, "Lake", "Key", "Format"?}``: the
        query's rows as one file at ``Key`` under the lake's root."""
        key = _text(payload, "Key").strip("/")
        kind = _format(payload, key)
        with self.connection(payload) as conn:
            cursor = conn.cursor()
            cursor.execute(_text(payload, "Query"), _params(payload))
            names = [d[0] for d in cursor.description or []]
            rows = cursor.fetchall()
        table = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows])
        if not names:
            raise ConfigError("opendms:export: its Query gives no columns")
        if table.num_columns == 0:  # no rows: the columns, all of them null
            table = pa.table({name: pa.array([], pa.null()) for name in names})
        out = io.BytesIO()
        if kind == "csv":
            pacsv.write_csv(table, out)
        else:
            pq.write_table(table, out)
        location = self.lake(payload).put(key, out.getvalue())
        return {
            "Location": location,
            "Key": key,
            "Rows": table.num_rows,
            "Columns": names,
        }

    def import_rows(self, payload: Payload) -> dict[str, Any]:
        """``{"Lake", "Key", "Format"?, "Endpoint", "Statement", "Columns"?}``: the
        statement run once per row of the file (in one transaction), with the row's
        values (``Columns``: which, in order; default all) as its parameters."""
        key = _text(payload, "Key").strip("/")
        table = _read_file(self.lake(payload).get(key), _format(payload, key))
        columns = payload.get("Columns") or table.column_names
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ConfigError(f"opendms:import: {key} has no column(s) {', '.join(missing)}")
        picked = table.select(columns).to_pylist()
        rows = [tuple(row[c] for c in columns) for row in picked]
        with self.connection(payload) as conn:
            cursor = conn.cursor()
            cursor.executemany(_text(payload, "Statement"), rows)
            conn.commit()
        return {"Rows": len(rows), "Key": key}

    def lake(self, payload: Payload) -> FileStore:
        url = self.url(payload, "Lake")
        return engine_for(url).file_store(url)

    def query(self, payload: Payload) -> dict[str, Any]:
        """``{"Query", "Keys"?}`` (``Keys``: a lake table's key columns by
        ``endpoint.schema.table``): ``{"Rows", "RowCount", "Sources"}``, each source
        with the rows it read."""
        from opendms.query.run import QueryOptions, run_query

        keys = payload.get("Keys") or {}
        if not isinstance(keys, dict):
            raise ConfigError("Keys must be an object: endpoint.schema.table -> [columns]")
        options = QueryOptions(self.endpoints, {name: tuple(cols) for name, cols in keys.items()})
        result = run_query(_text(payload, "Query"), options)
        rows = [{k: _json_value(v) for k, v in row.items()} for row in result.table.to_pylist()]
        sources = [{"Endpoint": r.endpoint, "Rows": r.rows} for r in result.reads]
        return {"Rows": rows, "RowCount": len(rows), "Sources": sources}

    def _task_file(self, payload: Payload) -> Path:
        """``File``, or the file task ``Task`` last ran from."""
        if "File" in payload:
            return Path(_text(payload, "File"))
        from opendms.service.tasks import TaskService

        service = TaskService(self.state)
        try:
            return Path(service.record(_text(payload, "Task")).file)
        finally:
            service.close()

    def validate(self, payload: Payload) -> dict[str, Any]:
        """``{"File"}`` or ``{"Task"}``, ``Tables``? (``schema.table`` names),
        ``FailOnMismatch``? (default true): the validation's result as ``validate
        --json`` prints it; a mismatch raises :class:`ValidationFailed` unless told not."""
        from opendms.config import load_task_file
        from opendms.state import StateStore
        from opendms.validate import validate_task

        spec = load_task_file(self._task_file(payload))
        store = StateStore(spec.state or self.state)
        try:
            result = validate_task(spec, store, payload.get("Tables") or None, None, None)
        finally:
            store.close()
        out: dict[str, Any] = result.to_json()
        if not result.ok and payload.get("FailOnMismatch", True):
            bad = [f"{t.qualified} ({t.state.value})" for t in result.tables if not _ok(t)]
            raise ValidationFailed(f"task {spec.name}: not validated: {', '.join(bad)}")
        return out

    def task_run(self, payload: Payload) -> dict[str, Any]:
        """``{"File"}`` (a task file) or ``{"Task"}`` (a task run before, from its file):
        the task run to its end here; its status and table statistics."""
        from opendms.service.tasks import TaskService

        file = self._task_file(payload)
        service = TaskService(self.state)
        try:
            result = service.run(service.load(file), file=file)
        finally:
            service.close()
        return {
            "Task": result.record.name,
            "Status": str(result.record.status),
            "Tables": [
                {
                    "Schema": t.schema,
                    "Table": t.name,
                    "State": str(t.state),
                    "FullLoadRows": t.full_load_rows,
                    "Inserts": t.inserts,
                    "Updates": t.updates,
                    "Deletes": t.deletes,
                    "ErrorRows": t.error_rows,
                }
                for t in result.tables
            ],
        }


class ValidationFailed(Exception):  # noqa: N818 - the States error name users catch
    """A validation found mismatches (its name is the error a Catch names)."""


def _ok(table: Any) -> bool:
    from opendms.validate.runner import ValidationState

    return bool(table.state is ValidationState.VALIDATED)


def _text(payload: Payload, field: str) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"the Parameters need {field!r} (a non-empty string)")
    return value


def _params(payload: Payload) -> list[Any]:
    """The statement's values: ``Parameters`` as a list, or an object with
    ``ParameterNames`` naming which of its fields, in order."""
    params = payload.get("Parameters", [])
    names = payload.get("ParameterNames")
    if isinstance(params, dict) and isinstance(names, list):
        missing = [n for n in names if n not in params]
        if missing:
            raise ConfigError(f"ParameterNames: the Parameters have no {', '.join(missing)}")
        return [params[n] for n in names]
    if not isinstance(params, list):
        raise ConfigError(
            "Parameters must be a list of the statement's values, or an object with "
            "ParameterNames (a list of its fields)"
        )
    return params


def _format(payload: Payload, key: str) -> str:
    kind = str(payload.get("Format") or ("parquet" if key.endswith(".parquet") else "csv"))
    if kind.lower() not in ("csv", "parquet"):
        raise ConfigError(f"Format {kind!r}: csv or parquet")
    return kind.lower()


def _read_file(data: bytes, kind: str) -> pa.Table:
    if kind == "parquet":
        return pq.read_table(io.BytesIO(data))
    # text stays text ('007' is not 7); an empty unquoted field is NULL, "" is ''
    with pacsv.open_csv(io.BytesIO(data)) as reader:
        names = reader.schema.names
    types = {name: pa.string() for name in names}
    convert = pacsv.ConvertOptions(
        column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    return pacsv.read_csv(io.BytesIO(data), convert_options=convert)


def _json_value(value: Any) -> Any:
    """A column value as JSON can hold it: exact decimals as text, times in ISO 8601,
    bytes in base64."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value
