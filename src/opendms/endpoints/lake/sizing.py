"""One lake file under ``MaxFileSize``: before each row group the writer asks how much
of it fits (:meth:`ParquetFile.share`, :meth:`CsvFile.share`).

No file exceeds ``MaxFileSize``, except one that holds a single row larger than it.
A row group that does not fit is split to fill the file (a CSV file to the byte; a
Parquet file only with a piece of at least a quarter of the row group, so row groups
stay large), and the rest goes to the next file.

* CSV: each row group is formatted into memory first, so its exact size is known
  before it is written; a gzip-compressed file counts the uncompressed bytes against
  the cap less zlib's worst-case growth (``deflateBound``), so the compressed file
  cannot exceed it either.
* Parquet: a file is ``PAR1``, the row groups, the footer (schema, and per row group
  the column chunk metadata with min/max statistics), its length and ``PAR1``. Far
  from the cap a row group is written straight away when an upper bound of its size
  fits: three times its Arrow size (dictionary pages, indices and codec growth stay
  under that) plus page headers with their statistics. Near the cap, where the bound
  might not fit, the row group is first encoded alone into memory with the same
  writer settings, which gives its exact size; only those row groups cost a second
  encoding. The footer so far is bounded by the footer of an empty file of the
  schema plus, per row group, its column metadata and statistics (Parquet drops
  min/max values longer than 4096 bytes).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from opendms.endpoints.lake.settings import LakeSettings

Verbatim = tuple[tuple[bytes, bytes], ...]
_ParquetCodec = Literal["gzip", "brotli", "lz4", "zstd", "snappy", "none"]
_ParquetVersion = Literal["1.0", "2.4", "2.6"]
# DMS's ParquetVersion names the format generation; "parquet-2-0" means format 2.x,
# which pyarrow writes as its newest 2.x version.
_PARQUET_VERSIONS: dict[str, _ParquetVersion] = {
    "parquet-1-0": "1.0",
    "parquet-2-0": "2.6",
    "parquet-2-4": "2.4",
    "parquet-2-6": "2.6",
}
STATS_MAX = 4096  # Parquet writes no min/max value longer than this
PAGE_ROWS = 20000  # pyarrow's default rows per data page at most
PAGE_BYTES = 1 << 20  # pyarrow's default data page size
PAGE_HEADER = 96  # a page header without its statistics, at most
COLUMN_META = 400  # a column chunk's metadata without statistics and path, at most


def parquet_writer(sink: Any, schema: pa.Schema, settings: LakeSettings) -> pq.ParquetWriter:
    codec = "gzip" if settings.CompressionType == "GZIP" else settings.ParquetCompression
    # LakeSettings only admits codec names pyarrow knows (settings._CHOICES).
    return pq.ParquetWriter(
        sink,
        schema,
        compression=cast(_ParquetCodec, codec),
        version=_PARQUET_VERSIONS[settings.ParquetVersion],
        write_statistics=settings.EnableStatistics,
        use_dictionary=settings.EncodingType != "plain",
        dictionary_pagesize_limit=settings.DictPageSizeLimit,
        data_page_size=settings.DataPageSize,
        coerce_timestamps="ms" if settings.ParquetTimestampInMillisecond else None,
        allow_truncated_timestamps=settings.ParquetTimestampInMillisecond,
    )


def csv_options(settings: LakeSettings, header: bool) -> pacsv.WriteOptions:
    # The stubs lag pyarrow: WriteOptions takes eol and null_string.
    return pacsv.WriteOptions(  # type: ignore[call-arg]
        include_header=header,
        delimiter=settings.CsvDelimiter,
        eol=settings.CsvRowDelimiter,
        null_string=settings.CsvNullValue,
        # RFC 4180 (DMS's default): text in double quotes, a quote doubled; without it
        # nothing is quoted, and a value holding a delimiter or quote cannot be written.
        quoting_style="needed" if settings.Rfc4180 else "none",
    )


class ParquetFile:
    """A Parquet file being written to ``sink`` (which it does not close)."""

    def __init__(self, sink: Any, schema: pa.Schema, settings: LakeSettings, limit: int) -> None:
        self.sink, self.schema, self.settings, self.limit = sink, schema, settings, limit
        self.writer = parquet_writer(sink, schema, settings)
        self.empty_size = _encoded_size(None, schema, settings)
        # the footer of an empty file (without its magic and length words), with room
        # for the row counts growing
        self.footer = self.empty_size - 12 + 16
        self.groups = 0

    min_piece = 4  # split a row group only into pieces of at least a quarter of it

    @property
    def empty(self) -> bool:
        return self.groups == 0

    def share(self, batch: pa.RecordBatch) -> float:
        """The part of ``batch`` (by size) the file has room for: 1 or more when it all fits."""
        meta = _metadata_bound(batch)
        if self._size_with(_data_bound(batch, self.settings.DataPageSize) + meta) <= self.limit:
            return 1.0
        exact = _encoded_size(batch, self.schema, self.settings) - self.empty_size
        exact += 40 * _leaves(batch.schema)  # offsets in the footer take more digits
        return (self.limit - self._size_with(0)) / exact

    def _size_with(self, more: int) -> int:
        """The file's size at close if ``more`` bytes (data and footer) were added."""
        return int(self.sink.tell()) + self.footer + 8 + more

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch, row_group_size=max(batch.num_rows, 1))
        self.footer += _metadata_bound(batch)
        self.groups += 1

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # the write already failed; this is only cleanup
            self.writer.is_open = False


class CsvFile:
    """A CSV file being written to ``sink`` (gzip-compressed when ``compressed``).

    ``verbatim``: (rendered placeholder, bytes) pairs replaced in each row group's text,
    for text pyarrow's writer cannot put in a cell as it is (see
    :mod:`opendms.endpoints.lake.nosup`)."""

    def __init__(
        self,
        sink: Any,
        schema: pa.Schema,
        settings: LakeSettings,
        limit: int,
        compressed: bool = False,
        verbatim: Verbatim = (),
    ) -> None:
        self.sink, self.settings, self.verbatim = sink, settings, verbatim
        self.room = _gzip_room(limit) if compressed else limit
        self.header = b""
        if settings.AddColumnName:
            self.header = _csv_bytes(schema.empty_table(), settings, header=True)
        self.written = 0
        self.pending: tuple[pa.RecordBatch, bytes] | None = None

    min_piece = 1 << 62  # a CSV file takes rows one by one

    @property
    def empty(self) -> bool:
        return self.written == 0

    def share(self, batch: pa.RecordBatch) -> float:
        """The part of ``batch`` (by size) the file has room for: 1 or more when it all fits."""
        data = _csv_bytes(batch, self.settings, header=False, verbatim=self.verbatim)
        self.pending = (batch, data)
        return (self.room - (self.written or len(self.header))) / max(len(data), 1)

    def write(self, batch: pa.RecordBatch) -> None:
        pending, self.pending = self.pending, None
        data = pending[1] if pending is not None and pending[0] is batch else b""
        if not data:
            data = _csv_bytes(batch, self.settings, header=False, verbatim=self.verbatim)
        if not self.written and self.header:
            self.sink.write(self.header)
            self.written = len(self.header)
        self.sink.write(data)
        self.written += len(data)

    def close(self) -> None:
        if not self.written and self.header:  # a file of no rows still has its header
            self.sink.write(self.header)

    def abort(self) -> None:
        self.pending = None


LakeFile = ParquetFile | CsvFile


def open_file(
    sink: Any,
    schema: pa.Schema,
    settings: LakeSettings,
    limit: int,
    compressed: bool,
    verbatim: Verbatim = (),
) -> LakeFile:
    if settings.DataFormat == "parquet":
        return ParquetFile(sink, schema, settings, limit)
    return CsvFile(sink, schema, settings, limit, compressed, verbatim)


def _csv_bytes(
    data: pa.RecordBatch | pa.Table, settings: LakeSettings, header: bool, verbatim: Verbatim = ()
) -> bytes:
    out = pa.BufferOutputStream()
    pacsv.write_csv(data, out, write_options=csv_options(settings, header))
    text = bytes(out.getvalue())
    for placeholder, value in verbatim:
        text = text.replace(placeholder, value)
    return text


def _gzip_room(limit: int) -> int:
    """The most uncompressed bytes whose gzip stream stays within ``limit`` (zlib's
    deflateBound: n + n/4096 + n/16384 + n/2^25 + 7, plus an 18-byte gzip wrapper)."""
    return max(0, (limit - 64) * 16384 // 16389)


def _encoded_size(batch: pa.RecordBatch | None, schema: pa.Schema, settings: LakeSettings) -> int:
    """The size of a Parquet file holding ``batch`` as one row group (None: no rows)."""
    out = pa.BufferOutputStream()
    writer = parquet_writer(out, schema, settings)
    if batch is not None:
        writer.write_batch(batch, row_group_size=max(batch.num_rows, 1))
    writer.close()
    return int(out.tell())


def _stats_size(array: pa.Array[Any] | pa.ChunkedArray[Any]) -> int:
    """The longest min/max statistic value of a column's row group."""
    kind = array.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _stats_size(pc.list_flatten(array))
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if (text or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)) and len(array):
        longest = pc.max(pc.binary_length(array)).as_py() or 0  # type: ignore[arg-type]
        return int(longest) if longest <= STATS_MAX else 0
    return 32


def _leaves(schema: pa.Schema) -> int:
    return sum(_leaf_count(field.type) for field in schema)


def _leaf_count(kind: pa.DataType) -> int:
    if pa.types.is_struct(kind):
        return sum(_leaf_count(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_map(kind):
        return _leaf_count(kind.key_type) + _leaf_count(kind.item_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _leaf_count(kind.value_type)
    return 1


def _metadata_bound(batch: pa.RecordBatch) -> int:
    """A row group's share of the footer, at most."""
    total = 64
    for field, column in zip(batch.schema, batch.columns, strict=True):
        leaves = _leaf_count(field.type)
        total += leaves * (COLUMN_META + len(field.name.encode()) + 2 * _stats_size(column))
    return total


def _data_bound(batch: pa.RecordBatch, page_bytes: int = PAGE_BYTES) -> int:
    """A row group's encoded size, at most: three times its Arrow size, plus page
    headers with their statistics (pages of ``page_bytes``, DMS's DataPageSize)."""
    headers = 0
    for field, column in zip(batch.schema, batch.columns, strict=True):
        pages = _leaf_count(field.type) * (2 + batch.num_rows // PAGE_ROWS)
        pages += 3 * int(column.nbytes) // min(page_bytes, PAGE_BYTES)
        headers += pages * (PAGE_HEADER + 2 * _stats_size(column))
    return 3 * int(batch.nbytes) + headers + 64
