"""A lake as federated queries read it (:mod:`opendms.query`).

``lake.schema.table`` is the table now: its LOAD then CDC files replayed by key and
``Op`` (:func:`~opendms.endpoints.lake.replay.replay`, as validation reads a lake); the
key is the one the query names (``--key``), else the rows are a multiset (a ``U`` then
cannot be matched: the error asks for the key). ``lake.schema."table$changes"`` is the
change log: every CDC file's rows in commit order with their ``Op`` (and timestamp
column). Columns and types come from the files (Parquet's own types; CSV is text).
Nothing is pushed down: a predicate on the current rows cannot cut the files the fold
needs, so DuckDB applies them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.lake.readback import replay_rows
from opendms.endpoints.lake.replay import (
    UnmatchedChangeError,
    lake_files,
    lead_columns,
    read_lake_file,
)
from opendms.endpoints.lake.settings import URL_KEYS, LakeSettings, lake_settings
from opendms.endpoints.lake.storage import Storage, open_storage
from opendms.endpoints.query.plan import Scan, TableName
from opendms.endpoints.query.sources import Request, SourceOptions, read_columns
from opendms.errors import ConfigError, EndpointError
from opendms.model import Column, ColumnType, Kind, Table

__all__ = ["LakeQuerySource"]

BATCH_ROWS = 65536

# Canonical kinds of the Arrow types a lake file holds (when it carries no opendms type).
_KINDS: tuple[tuple[Any, Kind], ...] = (
    (pa.types.is_boolean, Kind.BOOL),
    (pa.types.is_int16, Kind.INT16),
    (pa.types.is_int32, Kind.INT32),
    (pa.types.is_integer, Kind.INT64),
    (pa.types.is_float32, Kind.FLOAT32),
    (pa.types.is_floating, Kind.FLOAT64),
    (pa.types.is_date, Kind.DATE),
    (pa.types.is_time, Kind.TIME),
    (pa.types.is_binary, Kind.BINARY),
    (pa.types.is_large_binary, Kind.BINARY),
    (pa.types.is_interval, Kind.INTERVAL),
)


class LakeQuerySource:
    """The tables of one lake (``file://`` or ``s3://``)."""

    def __init__(self, url: EndpointURL, options: SourceOptions) -> None:
        keys = {k.lower() for k in URL_KEYS}
        query = {k: v for k, v in url.query.items() if k.lower() not in keys}
        self.url, self.keys = url, options.keys
        self.settings: LakeSettings = lake_settings(query)
        self.storage: Storage = open_storage(url, {})

    def describe(self, name: TableName) -> Table:
        loads, changes = self._files(name)
        paths = changes if name.changes else loads + changes
        if not paths:
            raise ConfigError(f"table {name} not found (endpoint {name.endpoint}: {self.url})")
        data = self._read(paths[0], cdc=paths[0] in changes, model=None)
        lead = len(lead_columns(self.settings, paths[0] in changes))
        fields = list(data.schema)[0 if name.changes else lead :]
        key = self.keys.get(f"{name.schema}.{name.table}", ())
        table = Table(name.schema, name.table, tuple(_column(f) for f in fields), key)
        _check_key(name, table)
        return table

    def request(self, scan: Scan, table: Table) -> Request:
        name = scan.name
        loads, changes = self._files(name)
        columns = read_columns(scan, table)
        if name.changes:
            text = f"read {len(changes)} CDC files of {self.storage.path(name.schema, name.table)}"
        else:
            key = ", ".join(table.primary_key) or "none: rows as a multiset"
            text = (
                f"read {len(loads)} LOAD + {len(changes)} CDC files of "
                f"{self.storage.path(name.schema, name.table)}, folded by key ({key})"
            )
        return Request(scan, table, columns, (), None, text + f"; columns {', '.join(columns)}")

    def read(self, request: Request) -> Iterator[pa.RecordBatch]:
        name, table = request.scan.name, request.table
        schema = pa.schema([table.arrow_schema().field(c) for c in request.columns])
        if name.changes:
            data = self._changes(name, table).select(list(request.columns))
            yield from data.cast(schema).to_batches(BATCH_ROWS)
            return
        rows = self._replayed(name, table)
        data = pa.Table.from_pylist([{c: r.get(c) for c in request.columns} for r in rows], schema)
        yield from data.to_batches(BATCH_ROWS)

    def close(self) -> None:
        pass

    def _files(self, name: TableName) -> tuple[list[str], list[str]]:
        try:
            return lake_files(self.storage, name.schema, name.table)
        except OSError as exc:
            raise EndpointError(str(self.url), f"cannot list table {name}: {exc}") from exc

    def _read(self, path: str, cdc: bool, model: Table | None) -> pa.Table:
        try:
            return read_lake_file(self.storage, path, self.settings, cdc=cdc, model=model)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise EndpointError(str(self.url), f"cannot read {path}: {exc}") from exc

    def _changes(self, name: TableName, table: Table) -> pa.Table:
        _, changes = self._files(name)
        lead = len(lead_columns(self.settings, True))
        model = Table(table.schema, table.name, table.columns[lead:])
        parts = [self._read(p, cdc=True, model=model) for p in changes]
        return pa.concat_tables(parts, promote_options="permissive")

    def _replayed(self, name: TableName, table: Table) -> list[dict[str, Any]]:
        try:
            return replay_rows(self.url, self.storage, self.settings, table)
        except UnmatchedChangeError as exc:
            raise ConfigError(
                f"table {name}: {exc}; name its key with --key {name}=COLUMN[,COLUMN]"
            ) from None


def _column(f: pa.Field[Any]) -> Column:
    """A file's column as a table column: its opendms type when the file keeps it."""
    meta: Mapping[bytes, bytes] = f.metadata or {}
    if b"opendms.type" in meta:
        return Column(f.name, ColumnType.from_json(json.loads(meta[b"opendms.type"])))
    return Column(f.name, _type_of(f.type))


def _type_of(dtype: pa.DataType) -> ColumnType:
    if pa.types.is_decimal(dtype):
        return ColumnType(Kind.DECIMAL, precision=dtype.precision, scale=dtype.scale)
    if pa.types.is_timestamp(dtype):
        return ColumnType(Kind.TIMESTAMPTZ if dtype.tz else Kind.TIMESTAMP)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return ColumnType(Kind.ARRAY, element=_type_of(dtype.value_type))
    for test, kind in _KINDS:
        if test(dtype):
            return ColumnType(kind)
    return ColumnType(Kind.STRING)


def _check_key(name: TableName, table: Table) -> None:
    names = {c.name for c in table.columns}
    missing = [k for k in table.primary_key if k not in names]
    if missing:
        raise ConfigError(f"--key {name}: no column(s) {', '.join(missing)} in the table")
