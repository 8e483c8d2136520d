"""Lake target: DMS-style Parquet/CSV files on a local directory or S3.

Layout: ``<root>/<schema>/<table>/LOAD00000001.parquet`` (hex counter), one
file per ``MaxFileSize``; parallel segments write ``SEGMENTn_LOAD…``. Names are
deterministic, so a re-run overwrites instead of adding duplicates, and
``prepare`` clears the full-load files of an earlier run.
"""

from __future__ import annotations

import contextlib
import re
import threading
from datetime import UTC, datetime
from typing import Any, Literal, cast

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection
from opendms.endpoints.lake.settings import LakeSettings
from opendms.endpoints.lake.storage import Storage, translate_os_error
from opendms.endpoints.pyvalues import decimal_text, python_values
from opendms.model import Kind, Table

_LOAD_FILE = re.compile(r"^(SEGMENT\d+_)?LOAD[0-9A-F]{8}\.(parquet|csv)(\.gz)?$")
_PARTIAL_FILE = re.compile(r"^(SEGMENT\d+_)?LOAD[0-9A-F]{8}\.(parquet|csv)(\.gz)?\.tmp$")
# Arrow types the CSV writer cannot render; they are written as text.
_CSV_AS_TEXT = {Kind.INTERVAL, Kind.ARRAY, Kind.BINARY}
_ParquetCodec = Literal["gzip", "brotli", "lz4", "zstd", "snappy", "none"]
_ParquetVersion = Literal["1.0", "2.4", "2.6"]


class LakeTarget:
    """Writes full-load files for each table."""

    def __init__(self, url: EndpointURL, storage: Storage, settings: LakeSettings) -> None:
        self.url = url
        self.storage = storage
        self.settings = settings
        self.started = datetime.now(UTC)
        self.files: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def table_dir(self, table: Table) -> str:
        return self.storage.path(table.schema, table.name)

    def prepare(self, table: Table, mode: PrepMode) -> None:
        folder = self.table_dir(table)
        try:
            if not self.storage.atomic_put:  # S3 needs no folders (and gets no marker objects)
                self.storage.fs.create_dir(folder, recursive=True)
            self._clear(folder, mode)
        except OSError as exc:
            raise translate_os_error(exc, self.url) from exc

    def _clear(self, folder: str, mode: PrepMode) -> None:
        """Delete partial files of an interrupted run, and LOAD files unless DO_NOTHING."""
        selector = pafs.FileSelector(folder, allow_not_found=True)
        for info in self.storage.fs.get_file_info(selector):
            name = info.base_name
            load = mode is not PrepMode.DO_NOTHING and _LOAD_FILE.match(name)
            if info.type == pafs.FileType.File and (load or _PARTIAL_FILE.match(name)):
                self.storage.fs.delete_file(info.path)

    def drop_table(self, table: Table) -> None:
        """A lake keeps history: the table's files stay."""

    def rename_table(self, old: Table, new: Table) -> None:
        """Later files go to the new table's folder; the older ones stay."""

    def writer(self, table: Table, segment: int | None) -> LakeWriter:
        return LakeWriter(self, table, segment)

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        return []

    def finish(self, table: Table) -> None:
        pass

    def record(self, table: Table, path: str) -> None:
        with self.lock:
            self.files.setdefault(table.qualified, []).append(path)

    def close(self) -> None:
        pass


class LakeWriter:
    """Rolls LOAD files at MaxFileSize for one table or segment."""

    def __init__(self, target: LakeTarget, table: Table, segment: int | None) -> None:
        self.target = target
        self.table = table
        self.settings = target.settings
        self.prefix = f"SEGMENT{segment}_" if segment is not None else ""
        self.counter = 0
        self.rows = 0
        self.sink: pa.NativeFile | None = None
        self.writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self.path = ""
        self.limit = self.settings.MaxFileSize * 1024

    def _extension(self) -> str:
        if self.settings.DataFormat == "parquet":
            return "parquet"
        return "csv.gz" if self.settings.CompressionType == "GZIP" else "csv"

    def _open(self, schema: pa.Schema) -> None:
        self.counter += 1
        name = f"{self.prefix}LOAD{self.counter:08X}.{self._extension()}"
        self.path = f"{self.target.table_dir(self.table)}/{name}"
        fs = self.target.storage.fs
        tmp = self.path if self.target.storage.atomic_put else self.path + ".tmp"
        compression = "gzip" if self._extension().endswith(".gz") else None
        self.sink = fs.open_output_stream(tmp, compression=compression)
        if self.settings.DataFormat == "parquet":
            self.writer = pq.ParquetWriter(
                self.sink,
                schema,
                compression=_parquet_codec(self.settings),
                version=_parquet_version(self.settings),
                write_statistics=self.settings.EnableStatistics,
            )
        else:
            # The stubs lag pyarrow: WriteOptions takes eol/null_string and
            # CSVWriter takes an Arrow output stream.
            options = pacsv.WriteOptions(  # type: ignore[call-arg]
                include_header=self.settings.AddColumnName,
                delimiter=self.settings.CsvDelimiter,
                eol=self.settings.CsvRowDelimiter,
                null_string=self.settings.CsvNullValue,
            )
            self.writer = pacsv.CSVWriter(self.sink, schema, write_options=options)  # type: ignore[arg-type]

    def _close_file(self) -> None:
        if self.writer is None or self.sink is None:
            return
        self.writer.close()
        self.sink.close()
        if not self.target.storage.atomic_put:
            self.target.storage.fs.move(self.path + ".tmp", self.path)
        self.target.record(self.table, self.path)
        self.writer = self.sink = None

    def write(self, batch: pa.RecordBatch) -> None:
        batch = self._decorate(batch)
        step = self.settings.RowGroupLength
        try:
            for start in range(0, batch.num_rows, step):
                if self.writer is None:
                    self._open(batch.schema)
                assert self.writer is not None and self.sink is not None
                self.writer.write_batch(batch.slice(start, step))
                if self.sink.tell() >= self.limit:
                    self._close_file()
        except OSError as exc:
            raise translate_os_error(exc, self.target.url) from exc
        self.rows += batch.num_rows

    def _decorate(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays = list(batch.columns)
        names = list(batch.schema.names)
        if self.settings.DataFormat == "csv":
            arrays = [self._csv_safe(a, n) for a, n in zip(arrays, names, strict=True)]
        else:
            arrays = [self._parquet_safe(a, n) for a, n in zip(arrays, names, strict=True)]
        n = batch.num_rows
        if self.settings.TimestampColumnName:
            arrays.insert(0, pa.array([self._stamp()] * n, pa.string()))
            names.insert(0, self.settings.TimestampColumnName)
        if self.settings.IncludeOpForFullLoad:
            arrays.insert(0, pa.array(["I"] * n, pa.string()))
            names.insert(0, "Op")
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _csv_safe(self, array: pa.Array[Any], name: str) -> pa.Array[Any]:
        ctype = self.table.column(name).type
        if ctype.kind is Kind.BINARY:
            return pa.array(
                [None if v is None else v.hex() for v in array.to_pylist()], pa.string()
            )
        if ctype.kind in _CSV_AS_TEXT:
            return pa.array(python_values(array, ctype), pa.string())
        if pa.types.is_decimal(array.type):  # Arrow's CSV writer would use 1E-10 notation
            return decimal_text(array)
        return array

    def _parquet_safe(self, array: pa.Array[Any], name: str) -> pa.Array[Any]:
        """Parquet has no month-day-nano interval: intervals travel as ISO 8601 text."""
        ctype = self.table.column(name).type
        if ctype.kind is Kind.INTERVAL:
            return pa.array(python_values(array, ctype), pa.string())
        return array

    def _stamp(self) -> str:
        when = self.target.started
        if not self.settings.UseTaskStartTimeForFullLoadTimestamp:
            when = datetime.now(UTC)
        return when.strftime("%Y-%m-%d %H:%M:%S.%f")

    def close(self) -> int:
        try:
            self._close_file()
        except OSError as exc:
            raise translate_os_error(exc, self.target.url) from exc
        return self.rows

    def abort(self) -> None:
        """Drop the file being written, so no partial file is ever published.

        Closing an S3 stream completes the upload, so the object is deleted after.
        """
        writer, sink = self.writer, self.sink
        self.writer = self.sink = None
        if sink is None:
            return
        if writer is not None:
            _close_quietly(writer)
        with contextlib.suppress(OSError):
            sink.close()
        partial = self.path if self.target.storage.atomic_put else self.path + ".tmp"
        with contextlib.suppress(OSError):
            self.target.storage.fs.delete_file(partial)


def _close_quietly(writer: pq.ParquetWriter | pacsv.CSVWriter) -> None:
    """Close a writer whose sink may be broken, without a second try in ``__del__``."""
    try:
        writer.close()
    except Exception:  # the load already failed; this is only cleanup
        if isinstance(writer, pq.ParquetWriter):
            writer.is_open = False


def _parquet_codec(settings: LakeSettings) -> _ParquetCodec:
    if settings.CompressionType == "GZIP":
        return "gzip"
    # LakeSettings only admits codec names pyarrow knows (settings._CHOICES).
    return cast(_ParquetCodec, settings.ParquetCompression)


# DMS's ParquetVersion names the format generation; "parquet-2-0" means format 2.x,
# which pyarrow writes as its newest 2.x version.
_PARQUET_VERSIONS: dict[str, _ParquetVersion] = {
    "parquet-1-0": "1.0",
    "parquet-2-0": "2.6",
    "parquet-2-4": "2.4",
    "parquet-2-6": "2.6",
}


def _parquet_version(settings: LakeSettings) -> _ParquetVersion:
    return _PARQUET_VERSIONS[settings.ParquetVersion]
