"""The files of a DMS-style lake: their names, their layout and their rows.

Written from the AWS DMS user guide ("Using Amazon S3 as a target for AWS DMS": file
names, "Using date-based folder partitioning", "Indicating source DB operations in
migrated S3 data", the ``TimestampColumnName`` and CSV settings) and from the README's
lake sections, never from opendms's code. :mod:`tests.oracles.lake` folds the rows.

Names (a table's files are under ``<schema>/<table>/``):

* LOAD files: ``LOAD`` and a counter of 8 upper-case hexadecimal digits (1, 2, … 9, A,
  B, … F, 10, …), ``SEGMENT<n>_`` before it for the segments of a parallel load, in the
  table folder itself; for a ``ranges`` parallel load with ``segment-names``, without
  the prefix in a folder of the table folder named after the segment (each counting
  from 1).
* CDC files: ``yyyymmdd-hhmmssfff`` (the stamp, to the millisecond), in the table
  folder, or with ``DatePartitionEnabled`` in the date folder of the stamp: the parts
  of ``DatePartitionSequence`` (default YYYYMMDD) joined by ``DatePartitionDelimiter``
  (SLASH ``/`` by default, UNDERSCORE, DASH, NONE).
* Extension ``.parquet`` (DataFormat parquet), ``.csv``, or ``.csv.gz`` (GZIP).

Columns: ``Op`` first where it is written (LOAD files with ``IncludeOpForFullLoad``;
CDC files unless ``CdcInsertsOnly`` or ``CdcInsertsAndUpdates`` is set without
``IncludeOpForFullLoad``), then the ``TimestampColumnName`` column (text
``yyyy-MM-dd HH:mm:ss.SSSSSS``), then the table's columns. CSV: ``CsvDelimiter``,
``CsvRowDelimiter``, a header with ``AddColumnName``, values in double quotes where
quoted (``""`` for a quote), and the null value ``CsvNullValue`` (default: an empty
field) never quoted, so a quoted field is always text and never null.

Values the source did not send (the S3Settings API reference, ``UseCsvNoSupValue`` and
``CsvNoSupValue``; README "Lake settings"): in CSV CDC files, with ``UseCsvNoSupValue``
true and ``CsvNoSupValue`` given, a column "not included in the supplemental log" holds
the ``CsvNoSupValue`` text, unquoted like the null value: such a field reads as
:data:`NOT_SENT`. Parquet files, LOAD files, and CSV files without both settings have
no such value (the null value stands for it).
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

Row = dict[str, Any]
Parse = Mapping[str, Callable[[str], Any]]

LOAD_NAME = re.compile(
    r"^(?P<segment>SEGMENT[1-9][0-9]*_)?LOAD(?P<counter>[0-9A-F]{8})"
    r"\.(?P<ext>parquet|csv|csv\.gz)$"
)
CDC_NAME = re.compile(r"^(?P<stamp>[0-9]{8}-[0-9]{9})\.(?P<ext>parquet|csv|csv\.gz)$")
TIMESTAMP_TEXT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}$")
CONTROL_FOLDER = "_opendms"  # the README's folder for opendms's own objects
STAMP = "%Y%m%d-%H%M%S"
_SEQUENCES = {
    "YYYYMMDD": ("%Y", "%m", "%d"),
    "YYYYMMDDHH": ("%Y", "%m", "%d", "%H"),
    "YYYYMM": ("%Y", "%m"),
    "MMYYYYDD": ("%m", "%Y", "%d"),
    "DDMMYYYY": ("%d", "%m", "%Y"),
}
_DELIMITERS = {"SLASH": "/", "UNDERSCORE": "_", "DASH": "-", "NONE": ""}
_TRUE = {"true", "y", "1"}


class LakeError(AssertionError):
    """The lake breaks a documented rule; the message names the file (and row)."""


class _NotSent:
    """The value of a CDC row's column that the source did not send."""

    def __repr__(self) -> str:
        return "NOT_SENT"


NOT_SENT: Any = _NotSent()


# -- rules a test derives its expectations from --------------------------------------


def load_name(counter: int, ext: str, segment: int | None = None) -> str:
    """The name of a table's ``counter``-th LOAD file (a hexadecimal counter from 1)."""
    prefix = f"SEGMENT{segment}_" if segment is not None else ""
    return f"{prefix}LOAD{counter:08X}.{ext}"


def stamp_of(when: datetime) -> str:
    """``yyyymmdd-hhmmssfff``: a wall-clock time to the millisecond (truncated)."""
    return f"{when.strftime(STAMP)}{when.microsecond // 1000:03d}"


def stamp_time(stamp: str) -> datetime:
    head, millis = stamp[:15], int(stamp[15:18])
    return datetime.strptime(head, STAMP).replace(microsecond=millis * 1000)


def next_stamp(first_commit: datetime, last: str | None) -> str:
    """README: a batch's stamp is its first commit time in milliseconds, but at least
    one millisecond after the last stamp (``first_commit`` as wall-clock time in UTC,
    or in DatePartitionTimezone when one is set)."""
    when = stamp_time(stamp_of(first_commit))
    if last is not None:
        when = max(when, stamp_time(last) + timedelta(milliseconds=1))
    return stamp_of(when)


def batch_stamps(first_commits: Sequence[datetime], last: str | None = None) -> list[str]:
    """The stamps of consecutive one-file batches (:func:`next_stamp` applied in turn)."""
    stamps: list[str] = []
    for when in first_commits:
        stamps.append(next_stamp(when, stamps[-1] if stamps else last))
    return stamps


# -- the layout the endpoint settings give ----------------------------------------------


def _settings(settings: Mapping[str, Any] | str | None) -> dict[str, str]:
    """DMS settings by lower-case name (a ``k=v;k=v`` string or a mapping)."""
    if settings is None:
        return {}
    if isinstance(settings, str):
        pairs = (p.split("=", 1) for p in settings.split(";") if p.strip())
        return {k.strip().lower(): v for k, v in pairs}
    return {str(k).lower(): str(v) for k, v in settings.items()}


@dataclass(frozen=True)
class Layout:
    """What a lake's files look like, from the DMS endpoint settings that decide it."""

    fmt: str = "csv"
    gzip: bool = False
    header: bool = False
    delimiter: str = ","
    row_delimiter: str = "\n"
    null: str = ""
    timestamp: str = ""
    op_in_load: bool = False
    op_in_cdc: bool = True
    cdc_ops: str = "IUD"
    partition: tuple[str, ...] = ()  # strftime parts of the date folder, () = none
    partition_delimiter: str = "/"
    not_sent: str | None = None  # CsvNoSupValue where CSV CDC files use it

    @classmethod
    def of(cls, settings: Mapping[str, Any] | str | None = None) -> Layout:
        s = _settings(settings)

        def flag(name: str) -> bool:
            return s.get(name.lower(), "false").strip().lower() in _TRUE

        inserts_only, inserts_updates = flag("CdcInsertsOnly"), flag("CdcInsertsAndUpdates")
        op_in_load = flag("IncludeOpForFullLoad")
        partition: tuple[str, ...] = ()
        if flag("DatePartitionEnabled"):
            partition = _SEQUENCES[s.get("datepartitionsequence", "YYYYMMDD").upper()]
        fmt = s.get("dataformat", "csv").lower()
        not_sent = s.get("csvnosupvalue") if flag("UseCsvNoSupValue") and fmt == "csv" else None
        return cls(
            fmt=fmt,
            gzip=s.get("compressiontype", "NONE").upper() == "GZIP",
            header=flag("AddColumnName"),
            delimiter=s.get("csvdelimiter", ","),
            row_delimiter=s.get("csvrowdelimiter", "\n"),
            null=s.get("csvnullvalue", ""),
            timestamp=s.get("timestampcolumnname", ""),
            op_in_load=op_in_load,
            op_in_cdc=op_in_load or not (inserts_only or inserts_updates),
            cdc_ops="I" if inserts_only else "IU" if inserts_updates else "IUD",
            partition=partition,
            partition_delimiter=_DELIMITERS[s.get("datepartitiondelimiter", "SLASH").upper()],
            not_sent=None if not_sent is None else _quoted_setting(not_sent),
        )

    @property
    def extension(self) -> str:
        if self.fmt == "parquet":
            return "parquet"
        return "csv.gz" if self.gzip else "csv"

    def lead(self, cdc: bool) -> list[str]:
        """The columns before the table's own: ``Op`` where written, the timestamp."""
        has_op = self.op_in_cdc if cdc else self.op_in_load
        return (["Op"] if has_op else []) + ([self.timestamp] if self.timestamp else [])

    def date_folder(self, stamp: str) -> str:
        """The date folder of a CDC file with this stamp ('' without partitions)."""
        when = stamp_time(stamp)
        return self.partition_delimiter.join(when.strftime(p) for p in self.partition)


def _quoted_setting(text: str) -> str:
    """A CSV text setting as the guide prints it: ``''`` is the empty string."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


# -- one file's rows ----------------------------------------------------------------------


@dataclass(frozen=True)
class FileRow:
    """One row of one file: the file (path from the lake root), the row's place in it,
    its ``Op`` ('' where the file has no Op column), its data columns and its
    timestamp-column text (None without one)."""

    file: str
    index: int
    op: str
    row: Row
    commit: str | None = None


def read_file(
    fs: pafs.FileSystem,
    full_path: str,
    name: str,
    layout: Layout,
    cdc: bool,
    columns: Sequence[str] | None = None,
    parse: Parse | None = None,
) -> list[FileRow]:
    """The rows of the file ``name`` (its path from the lake root) at ``full_path``."""
    lead = layout.lead(cdc)
    if layout.fmt == "parquet":
        with fs.open_input_file(full_path) as source:
            table = pq.read_table(source)
        names, records = list(table.column_names), table.to_pylist()
    else:
        names, records = _csv_file(fs, full_path, name, layout, lead, columns, parse, cdc)
    if names[: len(lead)] != lead:
        raise LakeError(f"{name}: expected leading columns {lead}, found {names}")
    return [_file_row(name, i, r, layout, cdc) for i, r in enumerate(records)]


def _file_row(name: str, index: int, record: Row, layout: Layout, cdc: bool) -> FileRow:
    has_op = layout.op_in_cdc if cdc else layout.op_in_load
    op = str(record.pop("Op")) if has_op else ("I" if not cdc or layout.cdc_ops == "I" else "")
    allowed = layout.cdc_ops if cdc else "I"
    if op not in allowed or (has_op and not op):
        raise LakeError(f"{name} row {index}: Op {op!r}, expected one of {list(allowed)}")
    commit = record.pop(layout.timestamp) if layout.timestamp else None
    if commit is not None and not TIMESTAMP_TEXT.match(str(commit)):
        raise LakeError(
            f"{name} row {index}: timestamp {commit!r} is not yyyy-MM-dd HH:mm:ss.SSSSSS"
        )
    return FileRow(name, index, op, record, None if commit is None else str(commit))


# -- CSV ------------------------------------------------------------------------------------


def _csv_file(
    fs: pafs.FileSystem,
    full_path: str,
    name: str,
    layout: Layout,
    lead: list[str],
    columns: Sequence[str] | None,
    parse: Parse | None,
    cdc: bool,
) -> tuple[list[str], list[Row]]:
    with fs.open_input_stream(full_path, compression=None) as stream:
        raw = stream.read()
    text = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode("utf-8")
    records = csv_records(text, layout.delimiter, layout.row_delimiter, name)
    if layout.header:
        if not records:
            raise LakeError(f"{name}: AddColumnName is set but the file has no header")
        names = [value for value, _ in records.pop(0)]
    elif columns is None:
        raise LakeError(f"{name}: a CSV file without a header needs the table's columns")
    else:
        names = lead + list(columns)
    not_sent = layout.not_sent if cdc else None
    lead_count = len(lead)
    return names, [
        _csv_row(names, r, layout.null, not_sent, lead_count, parse or {}, name) for r in records
    ]


def _csv_row(
    names: list[str],
    fields: list[tuple[str, bool]],
    null: str,
    not_sent: str | None,
    lead: int,
    parse: Parse,
    name: str,
) -> Row:
    if len(fields) != len(names):
        raise LakeError(f"{name}: a row of {len(fields)} fields, expected {len(names)}: {fields}")
    row: Row = {}
    for i, (column, (text, quoted)) in enumerate(zip(names, fields, strict=True)):
        value: Any = text
        if text == null and not quoted:
            value = None
        elif text == not_sent and not quoted and i >= lead:
            value = NOT_SENT
        elif column in parse:
            value = parse[column](value)
        row[column] = value
    return row


def csv_records(text: str, delimiter: str, row_end: str, name: str) -> list[list[tuple[str, bool]]]:
    """RFC 4180 records: each field as (text, whether it was quoted)."""
    records: list[list[tuple[str, bool]]] = []
    fields: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        value, quoted, i = _csv_field(text, i, delimiter, row_end, name)
        fields.append((value, quoted))
        if text.startswith(delimiter, i):
            i += len(delimiter)
            if i == n:  # a trailing delimiter: one more, empty field
                fields.append(("", False))
            continue
        if i < n and not text.startswith(row_end, i):
            raise LakeError(f"{name}: unexpected text after a quoted field at offset {i}")
        records.append(fields)
        fields, i = [], i + len(row_end)
    if fields:
        records.append(fields)
    return records


def _csv_field(text: str, i: int, delimiter: str, row_end: str, name: str) -> tuple[str, bool, int]:
    """One field from offset ``i``: (text, quoted, the offset after it)."""
    if not text.startswith('"', i):
        ends = [p for p in (text.find(delimiter, i), text.find(row_end, i)) if p >= 0]
        end = min(ends) if ends else len(text)
        return text[i:end], False, end
    out, j = io.StringIO(), i + 1
    while True:
        close = text.find('"', j)
        if close < 0:
            raise LakeError(f"{name}: a quoted field from offset {i} is never closed")
        out.write(text[j:close])
        if not text.startswith('"', close + 1):
            return out.getvalue(), True, close + 1
        out.write('"')
        j = close + 2
