"""A lake table as ``opendms validate`` reads it: its LOAD then CDC files replayed.

Validation (:mod:`opendms.validate.sides`) compares a lake target with its source
through this replay. Tests do not judge the lake with it: they use the independent
reader in ``tests/oracles/lake.py``, written from the DMS guide and the README.

The table's full-load files (``LOAD…``, ``SEGMENTn_LOAD…``) are read first, then its
CDC files (``yyyymmdd-hhmmssfff.*``) in name order, which is commit order, wherever
they are under the table folder (date-partition folders included; their names do not
always sort by date, the file names do). Rows are applied by key: ``I`` and ``U``
put the row (an upsert), ``D`` removes it; a row without an ``Op`` column is an
insert. A table without a key is a multiset of rows: ``I`` adds one, ``D`` removes one
equal row, and a change that matches no row is an :class:`UnmatchedChangeError`.
Parquet and CSV (gzip too) are read with pyarrow.

Which leading columns a file has comes from the endpoint settings, as DMS decides
them: ``Op`` for full-load files when ``IncludeOpForFullLoad``, for CDC files unless
``CdcInsertsOnly``/``CdcInsertsAndUpdates`` without ``IncludeOpForFullLoad``; then
the ``TimestampColumnName`` column when set. CSV files without a header
(``AddColumnName=false``) need the data column names (``columns``, or ``model``).

With ``model`` (the target :class:`~opendms.model.Table`) values come back in the
canonical Python form of its column types (CSV text parsed, Parquet interval text
read as intervals); without it, CSV values stay text and Parquet values as stored.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from datetime import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.lake.apply import CDC_FILE, cdc_has_op
from opendms.endpoints.lake.settings import LakeSettings, nosup_value
from opendms.endpoints.lake.storage import Storage, open_storage
from opendms.endpoints.lake.target import _LOAD_FILE
from opendms.endpoints.pyvalues import parse_iso_interval
from opendms.model import ColumnType, Kind, Table, arrow_type

Row = dict[str, Any]
Where = Storage | str | os.PathLike[str]


class UnmatchedChangeError(ValueError):
    """A change of a table without a primary key that matches no row (every ``U``)."""


def open_lake(where: Where) -> Storage:
    """A lake root: a :class:`Storage`, a local directory, or a ``file://``/``s3://`` URL
    (S3 credentials from the ``AWS_*`` environment)."""
    if isinstance(where, Storage):
        return where
    text = os.fspath(where)
    if "://" in text:
        return open_storage(EndpointURL.parse(text), {})
    root = os.path.abspath(text)
    return Storage(pafs.LocalFileSystem(), root, f"file://{root}", atomic_put=False)


def lake_files(storage: Storage, schema: str, table: str) -> tuple[list[str], list[str]]:
    """(full-load files, CDC files in replay order) of one table."""
    folder = storage.path(schema, table)
    selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
    infos = [i for i in storage.fs.get_file_info(selector) if i.type == pafs.FileType.File]
    loads = sorted(i.path for i in infos if _LOAD_FILE.match(i.base_name))
    cdc = sorted((i.base_name, i.path) for i in infos if CDC_FILE.match(i.base_name))
    return loads, [path for _, path in cdc]


def read_lake_file(
    storage: Storage,
    path: str,
    settings: LakeSettings,
    *,
    cdc: bool,
    model: Table | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """One file with all its columns (``Op`` and the timestamp column included); values
    the source did not send (``CsvNoSupValue``) are NULL."""
    return _read_file(storage, path, settings, cdc, model, columns)[0]


def _read_file(
    storage: Storage,
    path: str,
    settings: LakeSettings,
    cdc: bool,
    model: Table | None,
    columns: Sequence[str] | None,
) -> tuple[pa.Table, list[frozenset[str]]]:
    """A file's rows, and per row the columns the source did not send (CSV CDC files
    with ``UseCsvNoSupValue`` and ``CsvNoSupValue``: the unquoted marker text)."""
    lead = lead_columns(settings, cdc)
    unsent: list[frozenset[str]] = []
    if path.endswith(".parquet"):
        with storage.fs.open_input_file(path) as source:
            data = pq.read_table(source)
    else:
        raw = _csv_bytes(storage, path)
        names = _csv_names(raw, path, settings, lead, model, columns)
        data = _read_csv(raw, path, settings, names, [settings.CsvNullValue])
        marker = nosup_value(settings)
        if cdc and marker is not None:
            data, unsent = _not_sent(data, _read_csv(raw, path, settings, names, [marker]), lead)
    if list(data.column_names[: len(lead)]) != lead:
        raise ValueError(f"{path}: expected leading columns {lead}, found {data.column_names}")
    data = _typed_table(data, model, len(lead)) if model is not None else data
    return data, unsent


def replay(
    where: Where,
    schema: str,
    table: str,
    key: Sequence[str],
    *,
    settings: LakeSettings | None = None,
    model: Table | None = None,
    columns: Sequence[str] | None = None,
) -> list[Row]:
    """The table's rows after replaying its LOAD and CDC files (sorted by ``key``)."""
    storage, settings = open_lake(where), settings or LakeSettings()
    loads, changes = lake_files(storage, schema, table)
    rows: dict[tuple[Any, ...], Row] = {}
    for paths, cdc in ((loads, False), (changes, True)):
        for path in paths:
            data, unsent = _read_file(storage, path, settings, cdc, model, columns)
            _apply(rows, data.to_pylist(), key, settings, cdc, unsent)
    return _sorted(list(rows.values()), key)


def lead_columns(settings: LakeSettings, cdc: bool) -> list[str]:
    has_op = cdc_has_op(settings) if cdc else settings.IncludeOpForFullLoad
    lead = ["Op"] if has_op else []
    if settings.TimestampColumnName:
        lead.append(settings.TimestampColumnName)
    return lead


def _apply(
    rows: dict[tuple[Any, ...], Row],
    records: list[Row],
    key: Sequence[str],
    settings: LakeSettings,
    cdc: bool,
    unsent: list[frozenset[str]] | None = None,
) -> None:
    """Apply a file's rows; a value the source did not send (``unsent[i]``, the columns
    of row i) keeps the value the row has (the row a ``D`` right before removed, for the
    ``U`` of a key change; NULL for a row not held)."""
    has_op = cdc_has_op(settings) if cdc else settings.IncludeOpForFullLoad
    gone: Row | None = None  # the row the previous record (a D) removed
    for i, record in enumerate(records):
        op = record.pop("Op") if has_op else "I"
        if settings.TimestampColumnName:
            record.pop(settings.TimestampColumnName)
        if not key:
            _apply_keyless(rows, record, op)
            continue
        ident = tuple(_hashable(record.get(k)) for k in key)
        if op == "D":
            gone = rows.pop(ident, None)
            continue
        if op not in ("I", "U"):
            raise ValueError(f"unknown Op {op!r} in a lake file (row {ident})")
        held = rows.get(ident) or gone or {}
        for column in unsent[i] if unsent else ():
            record[column] = held.get(column)
        rows[ident] = record
        gone = None


def _apply_keyless(rows: dict[tuple[Any, ...], Row], record: Row, op: str) -> None:
    """A table without a key is a multiset: ``I`` adds a row, ``D`` removes one equal
    row; a ``U`` (or a ``D`` matching no row) cannot be matched to the row it changes."""
    if op == "I":
        rows[(len(rows), id(record))] = record
        return
    if op == "D":
        for ident, row in rows.items():
            if row == record:
                del rows[ident]
                return
    raise UnmatchedChangeError(
        f"a {op!r} change of a table without a primary key cannot be matched to the row it changes"
    )


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def _sorted(rows: list[Row], key: Sequence[str]) -> list[Row]:
    def sort_key(row: Row) -> tuple[Any, ...]:
        return tuple((row.get(k) is not None, row.get(k)) for k in key)

    try:
        return sorted(rows, key=sort_key)
    except TypeError:  # keys of mixed types: keep replay order
        return rows


# -- CSV ------------------------------------------------------------------------------


def _csv_bytes(storage: Storage, path: str) -> bytes:
    compression = "gzip" if path.endswith(".gz") else None
    with storage.fs.open_input_stream(path, compression=compression) as stream:
        return bytes(stream.read())


def _csv_names(
    raw: bytes,
    path: str,
    settings: LakeSettings,
    lead: list[str],
    model: Table | None,
    columns: Sequence[str] | None,
) -> list[str]:
    if settings.AddColumnName:
        return _header(raw, settings)
    data_names = list(columns) if columns else [c.name for c in model.columns] if model else []
    if not data_names:
        raise ValueError(f"{path}: a CSV file without header needs columns= or model=")
    return lead + data_names


def _read_csv(
    raw: bytes, path: str, settings: LakeSettings, names: list[str], nulls: list[str]
) -> pa.Table:
    """A CSV file as text columns; an unquoted field equal to one of ``nulls`` is NULL."""
    try:
        return pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1 if settings.AddColumnName else 0
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=settings.CsvDelimiter, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=nulls,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path}: not the expected CSV layout ({exc})") from exc


def _not_sent(
    data: pa.Table, marked: pa.Table, lead: list[str]
) -> tuple[pa.Table, list[frozenset[str]]]:
    """``data`` with the cells ``marked`` (read with the marker as its null text) has as
    NULL set to NULL too, and per row the names of those columns (the lead columns and
    real NULLs, which the marker reading sees as text, never count)."""
    unsent: list[set[str]] = [set() for _ in range(data.num_rows)]
    arrays = []
    for i, name in enumerate(data.column_names):
        array = data.column(i).combine_chunks()
        if i >= len(lead):
            mask = pc.and_(marked.column(i).combine_chunks().is_null(), array.is_valid())
            for row, flagged in enumerate(mask.to_pylist()):
                if flagged:
                    unsent[row].add(name)
            array = pc.if_else(mask, pa.scalar(None, array.type), array)
        arrays.append(array)
    return pa.table(arrays, names=data.column_names), [frozenset(u) for u in unsent]


def _header(raw: bytes, settings: LakeSettings) -> list[str]:
    first = raw.decode().split(settings.CsvRowDelimiter, 1)[0]
    return next(csv.reader(io.StringIO(first), delimiter=settings.CsvDelimiter))


# -- text back to canonical values ----------------------------------------------------


def _typed_table(data: pa.Table, model: Table, skip: int) -> pa.Table:
    types = {c.name: c.type for c in model.columns}
    arrays, names = [], list(data.column_names)
    for i, name in enumerate(names):
        array = data.column(i).combine_chunks()
        ctype = types.get(name)
        if i >= skip and ctype is not None and array.type != arrow_type(ctype):
            array = _from_text(array, ctype)
        arrays.append(array)
    return pa.table(arrays, names=names)


def _from_text(array: pa.Array[Any], ctype: ColumnType) -> pa.Array[Any]:
    """Values the lake stores as text (CSV, or Parquet intervals) as ``ctype`` values."""
    target = arrow_type(ctype)
    texts: list[str | None] = array.to_pylist()
    if ctype.kind is Kind.BINARY:
        return pa.array([None if t is None else bytes.fromhex(t) for t in texts], target)
    if ctype.kind is Kind.INTERVAL:
        return pa.array([None if t is None else parse_iso_interval(t) for t in texts], target)
    if ctype.kind is Kind.TIME:
        return pa.array([None if t is None else time.fromisoformat(t) for t in texts], target)
    if ctype.kind is Kind.ARRAY:
        return _array_values(texts, target)
    return pc.cast(array, target)


def _array_values(texts: list[str | None], target: pa.DataType) -> pa.Array[Any]:
    loaded = [None if t is None else json.loads(t) for t in texts]
    try:
        return pa.array(loaded, target)
    except (pa.ArrowException, TypeError, ValueError):
        cast: pa.Array[Any] = pc.cast(pa.array(loaded), target)
        return cast


__all__ = [
    "UnmatchedChangeError",
    "lake_files",
    "lead_columns",
    "open_lake",
    "read_lake_file",
    "replay",
]
