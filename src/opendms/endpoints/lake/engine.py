"""The lake engine: ``file://`` and ``s3://`` folders of LOAD and CDC files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

from opendms.endpoints.engine import ApplyOptions, Capabilities, Engine
from opendms.endpoints.lake.settings import LakeSettings
from opendms.errors import DatabaseMissingError
from opendms.model import ColumnType, Kind

if TYPE_CHECKING:
    from opendms.changes import Applier, ApplyPlan
    from opendms.checks import Check
    from opendms.endpoints.base import EndpointURL, Target
    from opendms.endpoints.lake.storage import Storage
    from opendms.endpoints.lake.target import LakeTarget
    from opendms.endpoints.query.sources import QuerySource, SourceOptions
    from opendms.endpoints.readback import TableRows

__all__ = ["ENGINE", "LakeEngine", "LakeFiles"]


class LakeFiles:
    """The lake's folder or bucket as a :class:`~opendms.endpoints.engine.FileStore`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def put(self, key: str, data: bytes) -> str:
        from opendms.endpoints.lake.storage import put_object

        put_object(self.storage, self.storage.path(key), data)
        return f"{self.storage.display.rstrip('/')}/{key.strip('/')}"

    def get(self, key: str) -> bytes:
        with self.storage.fs.open_input_file(self.storage.path(key)) as src:
            data: bytes = src.read()
        return data


class LakeEngine(Engine):
    """A Parquet or CSV lake in DMS's S3 layout: a target only; validation reads its
    files back and folds them by key."""

    name = "lake"
    title = "lake"
    schemes = ("file", "s3")
    capabilities = Capabilities(
        target=True, cdc_target=True, read_back=True, parallel_writers=True, records_changes=True
    )
    settings = LakeSettings

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        return self.lake_target(url, settings)

    def lake_target(self, url: EndpointURL, settings: dict[str, Any]) -> LakeTarget:
        """The lake of ``url`` with its endpoint settings (the URL query adds to them)."""
        from opendms.endpoints.lake.storage import open_storage
        from opendms.endpoints.lake.target import LakeTarget

        resolved = LakeSettings.resolve(url, settings)
        storage = open_storage(url, settings)
        _check_local_parent(storage, url)
        return LakeTarget(url, storage, resolved)

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        from opendms.endpoints.lake.apply import LakeApplier

        return LakeApplier(cast("LakeTarget", target), task, plans)

    def table_rows(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> TableRows:
        from opendms.endpoints.lake.readback import LakeRows

        return LakeRows(url, settings)

    def query_source(self, url: EndpointURL, options: SourceOptions) -> QuerySource:
        from opendms.endpoints.lake.query import LakeQuerySource

        return LakeQuerySource(url, options)

    def file_store(self, url: EndpointURL) -> LakeFiles:
        from opendms.endpoints.lake.storage import open_storage

        return LakeFiles(open_storage(url, {}))

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        from opendms.endpoints.lake.storage import check_storage, open_storage

        LakeSettings.resolve(url, settings)
        return check_storage(open_storage(url, settings), url)

    def target_checks(
        self, url: EndpointURL, settings: dict[str, Any], existing: list[str]
    ) -> list[Check]:
        """The lake's folder or bucket can be written (its "test connection")."""
        from opendms.checks import passed

        return [passed("target-writable", self.check(url, settings))]

    def lossy(self, ctype: ColumnType) -> str | None:
        if ctype.kind is Kind.DECIMAL and (ctype.precision or 77) > 76:
            return "unconstrained or > 76-digit numeric is written as text"
        return None

    def same_database(self, a: EndpointURL, b: EndpointURL) -> bool:
        """A lake is never a source, so it never holds a task's source tables."""
        return False


def _check_local_parent(storage: Storage, url: EndpointURL) -> None:
    """A local lake folder is created when missing, as an S3 prefix is, but only inside
    an existing folder: a mistyped path never grows a tree from the filesystem root."""
    if storage.atomic_put or os.path.isdir(storage.root):
        return
    parent = os.path.dirname(storage.root)
    if not os.path.isdir(parent):
        raise DatabaseMissingError(str(url), f"directory {parent!r} does not exist")


ENGINE = LakeEngine()
