"""Lake target: DMS-style Parquet/CSV files on a local directory or S3.

Layout: ``<root>/<schema>/<table>/LOAD00000001.parquet`` (hex counter), files of
at most ``MaxFileSize``; parallel segments write ``SEGMENTn_LOAD…``. Names are
deterministic, so a re-run overwrites instead of adding duplicates. ``prepare``
with DROP_AND_CREATE or TRUNCATE_BEFORE_LOAD removes the table's files of an
earlier run, LOAD and CDC files (date-partition folders included), as a database
target drops or empties the table; DO_NOTHING keeps them. Only files opendms names
are removed; a file of another name in the table folder stays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import tempfile
import threading
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection
from opendms.endpoints.lake.settings import LakeSettings
from opendms.endpoints.lake.sizing import LakeFile, Verbatim, open_file
from opendms.endpoints.lake.storage import (
    Storage,
    delete_files,
    drop_markers,
    translate_os_error,
    upload_args,
)
from opendms.endpoints.pyvalues import day_end_rows, decimal_text, python_values
from opendms.model import ColumnType, Kind, Table

_LOAD_FILE = re.compile(r"^(SEGMENT\d+_)?LOAD[0-9A-F]{8}\.(parquet|csv)(\.gz)?$")
CDC_FILE = re.compile(r"^\d{8}-\d{9}\.(parquet|csv|csv\.gz)$")  # yyyymmdd-hhmmssfff
_PARTIAL_FILE = re.compile(
    r"^((SEGMENT\d+_)?LOAD[0-9A-F]{8}|\d{8}-\d{9})\.(parquet|csv)(\.gz)?\.tmp$"
)
# Arrow types the CSV writer cannot render; they are written as text.
log = logging.getLogger("opendms.lake")
_CSV_AS_TEXT = {Kind.INTERVAL, Kind.ARRAY, Kind.BINARY}


class LakeTarget:
    """Writes full-load files for each table."""

    # Several writers may write one table or segment at once (ParallelLoadThreads): each
    # writes its own files, numbered from the one counter of that table or segment.

    def __init__(self, url: EndpointURL, storage: Storage, settings: LakeSettings) -> None:
        self.url = url
        self.storage = storage
        self.settings = settings
        self.started = datetime.now(UTC)
        self.files: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.object_tags: dict[tuple[str, str], dict[str, str]] = {}
        # The last LOAD counter of each (schema, table, segment folder, segment prefix).
        self.counters: dict[tuple[str, str, str, str], int] = {}

    def set_object_tags(
        self, tags: dict[tuple[str, str], dict[str, str]], quiet: bool = False
    ) -> None:
        """S3 object tags per target table (post-processing ``add-tag`` rules); on a
        local lake they do nothing (said once, unless ``quiet``)."""
        self.object_tags = {k: v for k, v in tags.items() if v}
        if self.object_tags and not self.storage.atomic_put and not quiet:
            log.warning("post-processing add-tag rules tag S3 objects: no effect on a local lake")

    def tags_of(self, table: Table) -> dict[str, str]:
        return self.object_tags.get((table.schema, table.name), {})

    def table_dir(self, table: Table) -> str:
        return self.storage.path(table.schema, table.name)

    def next_load_number(self, table: Table, folder: str, prefix: str) -> int:
        """The counter of the next LOAD file of ``table`` (and segment): 1, 2, … per table
        or segment, whichever of its writers asks."""
        key = (table.schema, table.name, folder, prefix)
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + 1
            return self.counters[key]

    def prepare(self, table: Table, mode: PrepMode) -> None:
        with self.lock:  # a new load of the table: its LOAD counters start again at 1
            for key in [k for k in self.counters if k[:2] == (table.schema, table.name)]:
                del self.counters[key]
        folder = self.table_dir(table)
        try:
            if not self.storage.atomic_put:  # S3 needs no folders (and gets no marker objects)
                self.storage.fs.create_dir(folder, recursive=True)
            self._clear(folder, mode)
        except OSError as exc:
            raise translate_os_error(exc, self.url) from exc

    def _clear(self, folder: str, mode: PrepMode) -> None:
        """Delete partial files of an interrupted run, and unless DO_NOTHING the LOAD
        and CDC files of an earlier run, then date folders left empty (locally) or
        folder markers (S3)."""
        selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
        infos = self.storage.fs.get_file_info(selector)
        gone = []
        for info in infos:
            name = info.base_name
            data = mode is not PrepMode.DO_NOTHING and (
                _LOAD_FILE.match(name) or CDC_FILE.match(name)
            )
            if info.type == pafs.FileType.File and (data or _PARTIAL_FILE.match(name)):
                gone.append(info.path)
        delete_files(self.storage, gone)
        folders = [i.path for i in infos if i.type == pafs.FileType.Directory]
        above = [self.storage.root, posixpath.dirname(folder)] if "/" in self.storage.root else []
        drop_markers(self.storage, [*above, folder, *folders])  # of an earlier version
        if not self.storage.atomic_put:
            self._drop_empty(folders)

    def _drop_empty(self, folders: list[str]) -> None:
        fs = self.storage.fs
        for path in sorted(folders, key=len, reverse=True):  # deepest first
            if not fs.get_file_info(pafs.FileSelector(path)):
                fs.delete_dir(path)

    def drop_table(self, table: Table) -> None:
        """A lake keeps history: the table's files stay."""

    def rename_table(self, old: Table, new: Table) -> None:
        """Later files go to the new table's folder; the older ones stay."""

    def writer(self, table: Table, segment: int | str | None) -> LakeWriter:
        return LakeWriter(self, table, segment)

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        """PostgreSQL's time 24:00:00 has no time of day in Parquet nor in Arrow's CSV text."""
        return [
            Rejection(row, c.name, "24:00:00 is no time of day a lake file holds")
            for c in table.columns
            if c.type.kind is Kind.TIME and c.name in batch.schema.names
            for row in day_end_rows(batch.column(c.name))
        ]

    def finish(self, table: Table) -> None:
        pass

    def record(self, table: Table, path: str) -> None:
        with self.lock:
            self.files.setdefault(table.qualified, []).append(path)

    def close(self) -> None:
        pass


class LakeWriter:
    """Writes LOAD files of at most MaxFileSize for one table or segment: a row group
    that does not fit the current file starts the next one (see :mod:`.sizing`)."""

    def __init__(self, target: LakeTarget, table: Table, segment: int | str | None) -> None:
        self.target = target
        self.table = table
        self.settings = target.settings
        # A numbered segment prefixes its files (SEGMENTn_LOAD…), a named one (ranges with
        # segment-names) gets a folder of that name in the table folder, as with DMS.
        self.prefix = f"SEGMENT{segment}_" if isinstance(segment, int) else ""
        self.folder = segment if isinstance(segment, str) else ""
        self.counter = 0
        self.rows = 0
        self.pending: list[pa.RecordBatch] = []  # rows of the next row group
        self.pending_rows = 0
        self.spool = ""  # the local file an S3 object is written to before its PUT
        self.upload: dict[str, str] = {}  # its PUT arguments
        self.sink: pa.NativeFile | None = None
        self.file: LakeFile | None = None
        self.path = ""
        self.limit = self.settings.MaxFileSize * 1024
        self.verbatim: Verbatim = ()  # CSV text replacements (CDC files: see .nosup)

    def _extension(self) -> str:
        if self.settings.DataFormat == "parquet":
            return "parquet"
        return "csv.gz" if self.settings.CompressionType == "GZIP" else "csv"

    def _open(self, schema: pa.Schema) -> None:
        first = not self.counter
        self.counter = self.target.next_load_number(self.table, self.folder, self.prefix)
        name = f"{self.prefix}LOAD{self.counter:08X}.{self._extension()}"
        folder = self.target.table_dir(self.table)
        if self.folder:
            folder = f"{folder}/{self.folder}"
            if first and not self.target.storage.atomic_put:
                self.target.storage.fs.create_dir(folder, recursive=True)
        self.path = f"{folder}/{name}"
        storage = self.target.storage
        self.upload = upload_args(storage, self.target.tags_of(self.table))
        if self.upload:  # headers pyarrow cannot send: spool locally, PUT by boto3
            handle, self.spool = tempfile.mkstemp(prefix="opendms-lake-")
            os.close(handle)
            sink: pa.NativeFile = pa.OSFile(self.spool, "wb")
            codec = self._codec()
            self.sink = pa.CompressedOutputStream(sink, codec) if codec else sink
        else:
            tmp = self.path if storage.atomic_put else self.path + ".tmp"
            self.sink = storage.fs.open_output_stream(tmp, compression=self._codec())
        self._start(schema)

    def _codec(self) -> Literal["gzip"] | None:
        return "gzip" if self._extension().endswith(".gz") else None

    def _start(self, schema: pa.Schema) -> None:
        compressed = self._codec() is not None
        self.file = open_file(
            self.sink, schema, self.settings, self.limit, compressed, self.verbatim
        )

    def _close_file(self) -> None:
        if self.file is None or self.sink is None:
            return
        self.file.close()
        self.sink.close()
        self._publish()
        self.file = self.sink = None

    def _publish(self) -> None:
        storage = self.target.storage
        if self.spool:
            try:
                assert storage.deleter is not None
                storage.deleter.upload(self.path, self.spool, self.upload)
            finally:
                self._drop_spool()
        elif not storage.atomic_put:
            storage.fs.move(self.path + ".tmp", self.path)
        self.target.record(self.table, self.path)

    def _drop_spool(self) -> None:
        if self.spool:
            with contextlib.suppress(OSError):
                os.unlink(self.spool)
            self.spool = ""

    def write(self, batch: pa.RecordBatch) -> None:
        """Rows are written in row groups of ``RowGroupLength`` rows (the last one of the
        file smaller), whatever the size of the batches the source reads."""
        batch = self._decorate(batch)
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self.pending_rows >= self.settings.RowGroupLength:
            self._flush(whole_groups_only=True)

    def _flush(self, whole_groups_only: bool) -> None:
        if not self.pending_rows:
            return
        rows = pa.concat_batches(self.pending)  # type: ignore[attr-defined]  # stubs lag pyarrow
        step = self.settings.RowGroupLength
        end = rows.num_rows - rows.num_rows % step if whole_groups_only else rows.num_rows
        rest = rows.slice(end)
        self.pending, self.pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
        try:
            for start in range(0, end, step):
                self._put(rows.slice(start, min(step, end - start)))
        except OSError as exc:
            raise translate_os_error(exc, self.target.url) from exc

    def _put(self, rows: pa.RecordBatch) -> None:
        """Write one row group where it fits: this file, split to fill it, or the next."""
        while rows.num_rows:
            rows = self._put_some(rows)

    def _put_some(self, rows: pa.RecordBatch) -> pa.RecordBatch:
        """Write what fits of ``rows`` into the current file; return the rest."""
        if self.file is None:
            self._open(rows.schema)
        assert self.file is not None
        share, count = self.file.share(rows), rows.num_rows
        piece = int(count * min(share, 1.0) * 0.95)  # sizes do not grow quite linearly
        if share >= 1:
            self.file.write(rows)
            return rows.slice(count)
        if piece >= 1 and (self.file.empty or piece >= count // self.file.min_piece):
            self._put(rows.slice(0, piece))  # it may still be too large: smaller again
            return rows.slice(piece)
        if not self.file.empty:
            self._close_file()
            return rows
        self.file.write(rows.slice(0, 1))  # a row larger than an empty file: alone
        return rows.slice(1)

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

    def _padded(self, array: pa.Array[Any], ctype: ColumnType) -> pa.Array[Any]:
        """AddTrailingPaddingCharacter: CHAR(n) text padded with spaces to n characters
        (a MySQL source strips them; PostgreSQL keeps them)."""
        if not (self.settings.AddTrailingPaddingCharacter and ctype.kind is Kind.STRING):
            return array
        if not ctype.fixed or not ctype.length or not pa.types.is_string(array.type):
            return array
        return pc.utf8_rpad(array, width=ctype.length, padding=" ")

    def _csv_safe(self, array: pa.Array[Any], name: str) -> pa.Array[Any]:
        ctype = self.table.column(name).type
        array = self._padded(array, ctype)
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
        array = self._padded(array, ctype)
        if ctype.kind is Kind.INTERVAL:
            return pa.array(python_values(array, ctype), pa.string())
        return array

    def _stamp(self) -> str:
        when = self.target.started
        if not self.settings.UseTaskStartTimeForFullLoadTimestamp:
            when = datetime.now(UTC)
        return when.strftime("%Y-%m-%d %H:%M:%S.%f")

    def close(self) -> int:
        self._flush(whole_groups_only=False)
        try:
            self._close_file()
        except OSError as exc:
            raise translate_os_error(exc, self.target.url) from exc
        return self.rows

    def abort(self) -> None:
        """Drop the file being written, so no partial file is ever published.

        Closing an S3 stream completes the upload, so the object is deleted after.
        """
        file, sink = self.file, self.sink
        self.file = self.sink = None
        self.pending, self.pending_rows = [], 0
        if sink is None:
            return
        if file is not None:
            file.abort()
        with contextlib.suppress(OSError):
            sink.close()
        if self.spool:
            self._drop_spool()
            return
        partial = self.path if self.target.storage.atomic_put else self.path + ".tmp"
        with contextlib.suppress(OSError):
            delete_files(self.target.storage, [partial])
