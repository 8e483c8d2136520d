"""Transaction-ordered CDC files: DMS's ``PreserveTransactions`` with ``CdcPath``.

Instead of one CDC file per table, each batch of changes is one CSV file
``<prefix>/<CdcPath>/CDC_TXN-<yyyymmdd-hhmmssfff>.csv`` (always CSV, whatever
``DataFormat`` says, as in DMS) holding every table's changes in commit order, a row
each: ``Op``, the table's name, its schema, then the row's values (the after image of
an insert or update, the before image of a delete), written by the CSV rules of the
LOAD files. The stamp is the one the batch's per-table files would have had, so names
grow with commit time and a re-run of a batch writes the same name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from opendms.endpoints.changerecords import OP_COLUMN
from opendms.endpoints.lake.settings import LakeSettings

if TYPE_CHECKING:
    from opendms.endpoints.lake.apply import _Segment
    from opendms.endpoints.lake.target import LakeTarget

PREFIX = "CDC_TXN-"


def transaction_settings(settings: LakeSettings) -> LakeSettings:
    """How rows of a transaction file are written: CSV without header or timestamp
    column, uncompressed, in one file."""
    return settings.model_copy(
        update={
            "DataFormat": "csv",
            "CompressionType": "NONE",
            "AddColumnName": False,
            "TimestampColumnName": "",
            "MaxFileSize": 1 << 30,
        }
    )


def transaction_path(target: LakeTarget, stamp: str) -> str:
    return target.storage.path(target.settings.CdcPath, f"{PREFIX}{stamp}.csv")


def decorate(segment: _Segment, arrays: list[pa.Array[Any]], names: list[str]) -> pa.RecordBatch:
    """A run's CSV-ready columns with Op, table name and schema name in front."""
    table, n = segment.shape.target, len(segment.ops)
    front = [
        pa.array(segment.ops, pa.string()),
        pa.array([table.name] * n, pa.string()),
        pa.array([table.schema] * n, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(
        front + arrays, names=[OP_COLUMN, "table_name", "schema_name", *names]
    )
