"""The target and read-back source of a ``jsonl://`` folder."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from opendms.endpoints.base import EndpointURL, PrepMode, Rejection
from opendms.model import Table
from tests.conformance.jsonl_engine.files import Folder, batch_rows, plain


class JsonlWriter:
    """Appends the batches of one table to its file."""

    def __init__(self, folder: Folder, table: Table) -> None:
        self.folder, self.table, self.rows = folder, table, 0

    def write(self, batch: pa.RecordBatch) -> None:
        rows = [plain(row) for row in batch.to_pylist()]
        self.folder.append(self.table.schema, self.table.name, rows)
        self.rows += len(rows)

    def close(self) -> int:
        return self.rows

    def abort(self) -> None:
        """Rows already appended stay (a reload prepares the table again)."""


class JsonlTarget:
    """Tables as files in one folder; every canonical value fits."""

    def __init__(self, url: EndpointURL, folder: Folder) -> None:
        self.url, self.folder = url, folder

    def prepare(self, table: Table, mode: PrepMode) -> None:
        schema = self.folder.path(table.schema, table.name, ".schema.json")
        if mode is PrepMode.DROP_AND_CREATE or not schema.exists():
            self.folder.save_schema(table)
        if mode is not PrepMode.DO_NOTHING:
            self.folder.replace(self.folder.path(table.schema, table.name), [])

    def writer(self, table: Table, segment: int | str | None) -> JsonlWriter:
        return JsonlWriter(self.folder, table)

    def finish(self, table: Table) -> None:
        """No indexes to build."""

    def reject(self, table: Table, batch: pa.RecordBatch) -> list[Rejection]:
        return []

    def drop_table(self, table: Table) -> None:
        self.folder.drop(table.schema, table.name)

    def rename_table(self, old: Table, new: Table) -> None:
        for suffix in (".jsonl", ".schema.json"):
            path = self.folder.path(old.schema, old.name, suffix)
            if path.exists():
                path.rename(self.folder.path(new.schema, new.name, suffix))

    def close(self) -> None:
        """Nothing is held open."""


BATCH_ROWS = 65536


class JsonlRows:
    """Reads a folder's tables back whole (validation, the conformance suite)."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    def batches(self, table: Table, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        rows = list(self.folder.rows(table.schema, table.name))
        for start in range(0, max(len(rows), 1), BATCH_ROWS):
            yield batch_rows(table, columns, rows[start : start + BATCH_ROWS])
