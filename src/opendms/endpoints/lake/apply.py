"""CDC files in the lake: the DMS S3-target change files, each written exactly once.

Layout and content (AWS DMS user guide, "Using Amazon S3 as a target", and the
S3Settings API reference):

* One file per table touched by a batch, next to the full-load files:
  ``<prefix>/<schema>/<table>/<yyyymmdd-hhmmssfff>.parquet|csv|csv.gz``, same
  format, compression and CSV options as the ``LOAD…`` files. With
  ``DatePartitionEnabled`` the files go one level deeper, into the date folder of
  the batch's commit time: ``DatePartitionSequence`` YYYYMMDD (default),
  YYYYMMDDHH, YYYYMM, MMYYYYDD or DDMMYYYY, its parts joined by
  ``DatePartitionDelimiter`` SLASH (default, ``2024/03/15``), UNDERSCORE, DASH or
  NONE. ``DatePartitionTimezone`` (Area/Location) converts that time for both the
  folder and the file name (DMS: "the conversion occurs when a date partition
  folder is created and a CDC filename is generated"); otherwise it is UTC.
* Columns: ``Op`` first (``I`` insert, ``U`` update after-image, ``D`` delete
  before-image, as in the DMS guide's ``D,101,Smith,Bob,13-Mar-17,Dallas``), then
  the ``TimestampColumnName`` column when set (the source
  commit time of the row's transaction, ``yyyy-MM-dd HH:mm:ss.SSSSSS`` in UTC),
  then the table's columns, values written exactly as the full load writes them.
* ``CdcInsertsOnly`` keeps only inserts, ``CdcInsertsAndUpdates`` inserts and
  updates; with either, the ``Op`` column is written only when
  ``IncludeOpForFullLoad`` is true, so CDC rows look like the full-load rows
  (DMS's "Indicating source DB operations in migrated S3 data"; opendms applies
  this to Parquet too, as DMS 3.4.7+ does for ``IncludeOpForFullLoad``).

What the lake cannot say exactly:

* A delete carries the old row where the source sends it (SQLite, MySQL/MariaDB
  with binlog_row_image=FULL, PostgreSQL tables with REPLICA IDENTITY FULL); where
  it sends only the key (PostgreSQL's default replica identity) the other columns of
  the before-image are NULL.
* An update value the source did not send (:data:`opendms.changes.UNCHANGED`, an
  unchanged TOASTed PostgreSQL value) is taken from the old row when the source
  sent it; otherwise it is unknown: written as NULL, with a warning logged once
  per table, or in CSV files with ``UseCsvNoSupValue`` as the ``CsvNoSupValue`` text
  (see :mod:`.nosup`). Give such tables REPLICA IDENTITY FULL.
* With a source filter (see :mod:`opendms.engine.transform`) an update whose row
  stays inside the filter is one ``U``, one that moves into it an ``I`` and out of
  it a ``D``; where the old row is unknown (the filter column is not in the key
  PostgreSQL sends), an update that passes is a ``U`` (read as an upsert) and one
  that fails a ``D`` by key (a no-op when the row was never in the lake).
* An update that changes the key is written as ``D`` (old key) then ``U`` (new
  row), so that replaying the files by key leaves no row behind under the old key.
* TRUNCATE removes the table's LOAD and CDC files written before it, as DMS does (no
  file row can say "all rows gone"); rows after it in the same batch go to new files.
  The removal happens after the batch's ``pending`` entry is saved and before its files
  are written, so a retry after a crash removes (nothing more) and writes the same files.
* A schema change (``Op.DDL``) makes the following files use the new column
  set; older files keep theirs (readers match columns by name). A batch in which
  a table's columns change between rows gets one file per column set, with
  consecutive stamps.

Exactly once: the checkpoint object ``<prefix>/_opendms/checkpoints/<task>.json``
(replaced whole: temporary file + rename locally, a single PUT on S3; in a folder
that query engines skip, see :mod:`.storage`) holds the
applied position and the last file stamp. A batch's stamp is its first commit
time in milliseconds, but at least one millisecond after the last stamp, so names
never collide and sort in commit order. Before the files are written the
checkpoint gets a ``pending`` entry (the batch end, stamp and file names); after
them, the new position without ``pending``. After a crash :meth:`must_flush_at`
returns the pending end so the engine ends its first batch there; that batch then
starts at the same transaction after the same last stamp and so rewrites the very
same object names (partial or complete files are overwritten, files of the
crashed attempt that the retry does not write are deleted).

``idempotent`` batches (changes that may already be in the lake, after a full
load without a shared snapshot) need nothing special: reading the files by key
is an upsert for ``I`` and ``U`` and a no-op ``D`` of a missing row.
"""

from __future__ import annotations

import logging
import posixpath
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.fs as pafs

from opendms.changes import UNCHANGED, ApplyPlan, Change, ColumnChange, Op, Transaction
from opendms.endpoints.base import PrepMode
from opendms.endpoints.changerecords import with_op_and_time
from opendms.endpoints.lake.checkpoint import Checkpoint, CheckpointStore, Pending
from opendms.endpoints.lake.nosup import mark_not_sent
from opendms.endpoints.lake.settings import LakeSettings, nosup_value
from opendms.endpoints.lake.storage import delete_files, put_object, translate_os_error
from opendms.endpoints.lake.target import CDC_FILE, LakeTarget, LakeWriter
from opendms.endpoints.lake.txnfiles import decorate, transaction_path, transaction_settings
from opendms.errors import DataError
from opendms.mapping import cast_exact
from opendms.model import Column, ColumnType, Kind, Table, arrow_type

log = logging.getLogger("opendms.lake.cdc")
__all__ = ["CDC_FILE", "LakeApplier"]

STAMP_FORMAT = "%Y%m%d-%H%M%S"  # + 3 millisecond digits
ONE_MS = timedelta(milliseconds=1)
_DATE_PARTS = {"YYYY": "%Y", "MM": "%m", "DD": "%d", "HH": "%H"}
_SEQUENCES = {
    "YYYYMMDD": ("YYYY", "MM", "DD"),
    "YYYYMMDDHH": ("YYYY", "MM", "DD", "HH"),
    "YYYYMM": ("YYYY", "MM"),
    "MMYYYYDD": ("MM", "YYYY", "DD"),
    "DDMMYYYY": ("DD", "MM", "YYYY"),
}
_DELIMITERS = {"SLASH": "/", "UNDERSCORE": "_", "DASH": "-", "NONE": ""}


# -- what the files look like (shared with opendms.endpoints.lake.replay) ----------


def cdc_has_op(settings: LakeSettings) -> bool:
    """True when CDC files start with the ``Op`` column."""
    filtered = settings.CdcInsertsOnly or settings.CdcInsertsAndUpdates
    return settings.IncludeOpForFullLoad or not filtered


def allowed_ops(settings: LakeSettings) -> frozenset[str]:
    """The operation letters CDC files may hold."""
    if settings.CdcInsertsOnly:
        return frozenset("I")
    if settings.CdcInsertsAndUpdates:
        return frozenset("IU")
    return frozenset("IUD")


def partition_zone(settings: LakeSettings) -> ZoneInfo | None:
    """The zone of file stamps and date folders (None = UTC)."""
    if settings.DatePartitionEnabled and settings.DatePartitionTimezone:
        return ZoneInfo(settings.DatePartitionTimezone)
    return None


def stamp_time(commit: datetime, settings: LakeSettings) -> datetime:
    """A commit time as the naive wall-clock millisecond that names its file."""
    aware = commit if commit.tzinfo is not None else commit.replace(tzinfo=UTC)
    zone = partition_zone(settings)
    local = aware.astimezone(zone or UTC).replace(tzinfo=None)
    return local.replace(microsecond=local.microsecond // 1000 * 1000)


def stamp_text(when: datetime) -> str:
    """``yyyymmdd-hhmmssfff``."""
    return f"{when.strftime(STAMP_FORMAT)}{when.microsecond // 1000:03d}"


def parse_stamp(text: str) -> datetime:
    head, millis = text[:-3], text[-3:]
    return datetime.strptime(head, STAMP_FORMAT).replace(microsecond=int(millis) * 1000)


def date_folder(when: datetime, settings: LakeSettings) -> str:
    """The date-partition folder of a file stamp ('' when partitioning is off)."""
    if not settings.DatePartitionEnabled:
        return ""
    parts = _SEQUENCES[settings.DatePartitionSequence]
    joined = _DELIMITERS[settings.DatePartitionDelimiter]
    return joined.join(when.strftime(_DATE_PARTS[p]) for p in parts)


def commit_text(commit: datetime) -> str:
    """The ``TimestampColumnName`` value of a CDC row: the commit time in UTC."""
    aware = commit if commit.tzinfo is not None else commit.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def file_extension(settings: LakeSettings) -> str:
    if settings.DataFormat == "parquet":
        return "parquet"
    return "csv.gz" if settings.CompressionType == "GZIP" else "csv"


# -- a table's columns as the changes see them ----------------------------------------


def _source_type(shape: ApplyPlan, target_column: Column) -> ColumnType:
    """The source type of the column copied into ``target_column`` (its own type when
    nothing is copied into it)."""
    for src, tgt in shape.names.items():
        if tgt == target_column.name:
            return shape.source.column(src).type
    return target_column.type


def _after(shape: ApplyPlan, cc: ColumnChange) -> ApplyPlan:
    """The table pair after one column change (:meth:`ApplyPlan.after`; applying it twice
    changes nothing); an added column without a type lands as text, a retype without
    one changes nothing."""
    if cc.ctype is None and cc.action == "alter_type":
        return shape
    if cc.ctype is None and cc.action == "add":
        cc = replace(cc, ctype=ColumnType(Kind.STRING))
    return shape.after(cc)


# -- rows of one file -----------------------------------------------------------------


@dataclass
class _Segment:
    """Rows of one table under one column set: one file."""

    shape: ApplyPlan
    ops: list[str] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, op: str, stamp: str, row: dict[str, Any]) -> None:
        self.ops.append(op)
        self.stamps.append(stamp)
        self.rows.append(row)

    def batch(self) -> pa.RecordBatch:
        """The rows as target columns with the target types (as the full load has them)."""
        target = self.shape.target
        arrays = [self._array(column) for column in target.columns]
        return pa.RecordBatch.from_arrays(arrays, names=[c.name for c in target.columns])

    def _array(self, column: Column) -> pa.Array[Any]:
        values = [None if (v := row.get(column.name)) is UNCHANGED else v for row in self.rows]
        source = _source_type(self.shape, column)
        table = self.shape.target.qualified
        try:
            array = pa.array(values, arrow_type(source))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise DataError(table, f"column {column.name}: cannot write a change: {exc}") from exc
        if source == column.type:
            return array
        return cast_exact(
            array,
            column.type,
            arrow_type(column.type),
            table=table,
            column=column.name,
            label=lambda i: f"change {i + 1} of the batch",
        )


@dataclass
class _Job:
    """One CDC file to write: its path and its bytes."""

    path: str
    data: bytes
    tags: dict[str, str] = field(default_factory=dict)  # S3 object tags


class _CdcEncoder(LakeWriter):
    """The full-load writer's value handling and file cutting, into memory: one
    segment's rows as CDC files of at most MaxFileSize (usually one)."""

    def __init__(self, target: LakeTarget, segment: _Segment) -> None:
        super().__init__(target, segment.shape.target, None)
        self.segment = segment
        self.buffer: pa.BufferOutputStream | None = None
        self.files: list[bytes] = []

    def _open(self, schema: pa.Schema) -> None:
        self.buffer = pa.BufferOutputStream()
        codec = self._codec()
        self.sink = self.buffer if codec is None else pa.CompressedOutputStream(self.buffer, codec)
        self._start(schema)

    def _publish(self) -> None:
        assert self.buffer is not None
        self.files.append(self.buffer.getvalue().to_pybytes())

    def _decorate(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        names = list(batch.schema.names)
        if self.settings.DataFormat == "csv":
            arrays = self._csv_arrays(batch, names)
        else:
            arrays = [self._parquet_safe(a, n) for a, n in zip(batch.columns, names, strict=True)]
        segment, column = self.segment, self.settings.TimestampColumnName
        ops = segment.ops if cdc_has_op(self.settings) else None
        stamps = (column, segment.stamps) if column else None
        return with_op_and_time(arrays, names, ops, stamps)

    def _csv_arrays(self, batch: pa.RecordBatch, names: list[str]) -> list[pa.Array[Any]]:
        """The segment's rows (the whole ``batch``) as CSV-ready columns, values the source
        did not send marked for ``CsvNoSupValue`` (before the first file opens)."""
        arrays = [self._csv_safe(a, n) for a, n in zip(batch.columns, names, strict=True)]
        arrays, self.verbatim = mark_not_sent(arrays, names, self.segment.rows, self.settings)
        return arrays


class _TxnEncoder(_CdcEncoder):
    """One run of a transaction file: CSV rows with Op, table and schema in front."""

    def __init__(self, target: LakeTarget, segment: _Segment) -> None:
        super().__init__(target, segment)
        self.settings = transaction_settings(target.settings)
        self.limit = self.settings.MaxFileSize * 1024

    def _decorate(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        names = list(batch.schema.names)
        return decorate(self.segment, self._csv_arrays(batch, names), names)


# -- the applier ----------------------------------------------------------------------


class LakeApplier:
    """Writes change batches as DMS CDC files (the Applier of the lake target)."""

    def __init__(self, target: LakeTarget, task: str, plans: list[ApplyPlan]) -> None:
        self.target = target
        self.task = task
        self.settings = target.settings
        self.shapes = {(p.source.schema, p.source.name): p for p in plans}
        self.store = CheckpointStore(target, task)
        self.checkpoint = self.store.load()
        self.truncates: Counter[str] = Counter()  # TRUNCATEs applied (files removed)
        self.unknown_warned: set[str] = set()
        self.order: list[_Segment] = []  # the batch's runs in commit order (transaction files)

    # -- Applier protocol

    def read_checkpoint(self) -> str | None:
        return self.checkpoint.position

    def write_checkpoint(self, position: str) -> None:
        """Record ``position`` with no files (after a full load); the files of an
        unfinished batch are dropped, since the stream restarts from ``position``."""
        if self.checkpoint.pending is not None:
            self._delete(self.checkpoint.pending.files)
        self._save(Checkpoint(position, self.checkpoint.last_stamp))

    def apply(self, batch: list[Transaction], position: str, idempotent: bool) -> int:
        """Write one file per table touched by ``batch`` (or, with PreserveTransactions,
        one transaction file), then record ``position``.

        ``idempotent`` needs nothing here: readers replay the files by key (upsert)."""
        shapes = dict(self.shapes)
        truncated: set[tuple[str, str]] = set()
        segments = self._segments(batch, shapes, truncated)
        old, last = self.checkpoint.pending, self.checkpoint.last_stamp
        jobs: list[_Job] = []
        if segments or truncated:
            first = self._first_stamp(batch)
            if self.settings.PreserveTransactions:
                jobs, depth = self._transaction_job(segments, first), 1
            else:
                jobs, depth = self._jobs(segments, first) if segments else ([], 1)
            last = stamp_text(first + (depth - 1) * ONE_MS) if segments else last
            pending = Pending(position, stamp_text(first), tuple(j.path for j in jobs))
            self._save(replace(self.checkpoint, pending=pending))
        for key in sorted(truncated):  # before the batch's own files are written
            self.target.prepare(shapes[key].target, PrepMode.TRUNCATE_BEFORE_LOAD)
        for job in jobs:
            self._write(job)
        if old is not None:
            written = {j.path for j in jobs}
            self._delete([p for p in old.files if p not in written])
        self._save(Checkpoint(position, last))
        self.shapes = shapes
        return sum(len(t.changes) for t in batch)

    def schema_changed(self, plan: ApplyPlan) -> None:
        self.shapes[(plan.source.schema, plan.source.name)] = plan

    def table_dropped(self, schema: str, table: str) -> None:
        self.shapes.pop((schema, table), None)

    def batch_hint(self) -> tuple[float, int] | None:
        return float(self.settings.CdcMaxBatchInterval), self.settings.CdcMinFileSize * 1024

    def must_flush_at(self) -> str | None:
        pending = self.checkpoint.pending
        return pending.end if pending is not None else None

    def close(self) -> None:
        for table, count in sorted(self.truncates.items()):
            log.info("table %s: %d TRUNCATE(s) removed its files", table, count)

    # -- batch to rows

    def _segments(
        self,
        batch: list[Transaction],
        shapes: dict[tuple[str, str], ApplyPlan],
        truncated: set[tuple[str, str]],
    ) -> dict[tuple[str, str], list[_Segment]]:
        """The batch's rows per table, a new segment wherever a DDL changes its columns
        (``shapes`` follows the DDLs; it becomes the applier's after the batch). A
        TRUNCATE drops the table's rows of the batch before it and joins ``truncated``."""
        out: dict[tuple[str, str], list[_Segment]] = {}
        allowed = allowed_ops(self.settings)
        self.order = []
        for txn in batch:
            stamp = commit_text(txn.commit_time)
            for change in txn.changes:
                key = (change.schema, change.table)
                shape = shapes.get(key)
                if shape is None:
                    continue
                if change.op is Op.DDL:
                    shapes[key] = _after_ddl(shape, change, out.setdefault(key, []))
                elif change.op is Op.TRUNCATE:
                    out[key] = [self._truncated(shape)]
                    truncated.add(key)
                else:
                    wanted = [(op, row) for op, row in self._rows(shape, change) if op in allowed]
                    if wanted:
                        self._add(out.setdefault(key, [_Segment(shape)]), shape, stamp, wanted)
        return {k: [s for s in v if s.rows] for k, v in out.items() if any(s.rows for s in v)}

    def _truncated(self, shape: ApplyPlan) -> _Segment:
        """A TRUNCATE: the table's segment starts over empty (counted, said at close)."""
        if self.settings.PreserveTransactions:
            log.warning(
                "table %s: a TRUNCATE removes its LOAD files; transaction files have no row for it",
                shape.source.qualified,
            )
        self.truncates[shape.source.qualified] += 1
        return _Segment(shape)

    def _add(
        self, segs: list[_Segment], shape: ApplyPlan, stamp: str, wanted: list[tuple[str, Any]]
    ) -> None:
        """One change's rows onto the table's last segment; with PreserveTransactions, rows
        of another table in between start a new run, so the files keep commit order."""
        if self.settings.PreserveTransactions and (
            not self.order or self.order[-1] is not segs[-1]
        ):
            if segs[-1].rows:
                segs.append(_Segment(shape))
            self.order.append(segs[-1])
        for op, row in wanted:
            segs[-1].add(op, stamp, row)

    def _rows(self, shape: ApplyPlan, change: Change) -> list[tuple[str, dict[str, Any]]]:
        """(Op letter, row by target column) for one row change."""
        old = change.before()
        before = _image(shape, old)
        if change.op is Op.DELETE:
            return [("D", before)]
        new = {c: old.get(c, v) if v is UNCHANGED else v for c, v in _pairs(change)}
        after = _image(shape, new)
        if change.op is Op.INSERT:
            return [("I", after)]
        self._check_known(shape, new)
        if _key_changed(shape, change):
            return [("D", before), ("U", after)]
        return [("U", after)]

    def _check_known(self, shape: ApplyPlan, new: dict[str, Any]) -> None:
        """Warn (once per table) when an update lacks some of the after-image."""
        sent = {c for c, v in new.items() if v is not UNCHANGED}
        missing = sorted(set(shape.names) - sent)
        table = shape.source.qualified
        if missing and table not in self.unknown_warned:
            self.unknown_warned.add(table)
            marker = nosup_value(self.settings)
            csv = self.settings.DataFormat == "csv" or self.settings.PreserveTransactions
            written = "NULL" if marker is None or not csv else f"CsvNoSupValue {marker!r}"
            log.warning(
                "table %s: an update did not carry column(s) %s (unchanged TOAST values); "
                "the lake gets %s for them. REPLICA IDENTITY FULL on the source avoids this",
                table,
                ", ".join(missing),
                written,
            )

    # -- files

    def _first_stamp(self, batch: list[Transaction]) -> datetime:
        """The batch's first commit millisecond, after the last stamp already used."""
        first = stamp_time(batch[0].commit_time, self.settings)
        if self.checkpoint.last_stamp:
            first = max(first, parse_stamp(self.checkpoint.last_stamp) + ONE_MS)
        return first

    def _jobs(
        self, segments: dict[tuple[str, str], list[_Segment]], first: datetime
    ) -> tuple[list[_Job], int]:
        """The batch's files, encoded, and the most files of one table: a table's files
        take consecutive stamps from ``first`` (a segment may need several files)."""
        jobs, depth = [], 0
        for segs in segments.values():
            files = [(seg.shape.target, data) for seg in segs for data in self._encode(seg)]
            for i, (table, data) in enumerate(files):
                path = self._path(table, first + i * ONE_MS)
                jobs.append(_Job(path, data, self.target.tags_of(table)))
            depth = max(depth, len(files))
        jobs.sort(key=lambda j: posixpath.basename(j.path))
        return jobs, depth

    def _transaction_job(
        self, segments: dict[tuple[str, str], list[_Segment]], first: datetime
    ) -> list[_Job]:
        """The batch as one transaction file, its rows in commit order."""
        runs = [seg for seg in self.order if seg.rows]
        if not runs:
            return []
        data = b"".join(part for seg in runs for part in self._encode(seg, _TxnEncoder))
        return [_Job(transaction_path(self.target, stamp_text(first)), data)]

    def _encode(self, segment: _Segment, kind: type[_CdcEncoder] | None = None) -> list[bytes]:
        encoder = (kind or _CdcEncoder)(self.target, segment)
        try:
            encoder.write(segment.batch())
            encoder.close()
        except BaseException:
            encoder.abort()
            raise
        return encoder.files

    def _path(self, table: Table, when: datetime) -> str:
        folder = self.target.table_dir(table)
        partition = date_folder(when, self.settings)
        if partition:
            folder = f"{folder}/{partition}"
        return f"{folder}/{stamp_text(when)}.{file_extension(self.settings)}"

    def _write(self, job: _Job) -> None:
        try:
            put_object(self.target.storage, job.path, job.data, job.tags)
        except OSError as exc:
            raise translate_os_error(exc, self.target.url) from exc

    def _delete(self, paths: list[str] | tuple[str, ...]) -> None:
        storage = self.target.storage
        names = [n for p in paths for n in ((p,) if storage.atomic_put else (p, p + ".tmp"))]
        try:
            found = [n for n in names if storage.fs.get_file_info(n).type == pafs.FileType.File]
            delete_files(storage, found)
        except OSError as exc:
            raise translate_os_error(exc, self.target.url) from exc

    def _save(self, checkpoint: Checkpoint) -> None:
        self.store.save(checkpoint)
        self.checkpoint = checkpoint


def _after_ddl(shape: ApplyPlan, change: Change, segments: list[_Segment]) -> ApplyPlan:
    """Apply a DDL change's column changes; later rows go to a segment of the new shape."""
    for cc in change.ddl:
        shape = _after(shape, cc)
    if segments and not segments[-1].rows:
        segments[-1] = _Segment(shape)
    else:
        segments.append(_Segment(shape))
    return shape


def _pairs(change: Change) -> zip[tuple[str, Any]]:
    return zip(change.columns, change.values, strict=True)


def _image(shape: ApplyPlan, row: dict[str, Any]) -> dict[str, Any]:
    """A source row by target column names (values the source did not send stay
    UNCHANGED: NULL in the files, or ``CsvNoSupValue``)."""
    out: dict[str, Any] = {}
    for column, value in row.items():
        name = shape.names.get(column)
        if name is not None:
            out[name] = value
    return out


def _key_changed(shape: ApplyPlan, change: Change) -> bool:
    """True when an update moves the row to another key (old key values differ)."""
    identity = shape.source.primary_key or change.key_columns
    old = dict(zip(change.key_columns, change.key, strict=True))
    new = dict(zip(change.columns, change.values, strict=True))
    known = [c for c in identity if c in old and c in new and new[c] is not UNCHANGED]
    return any(old[c] != new[c] for c in known)
