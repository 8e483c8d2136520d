"""The JSON-lines engine: ``jsonl:///path/to/folder`` endpoints (test-only)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from opendms.endpoints.engine import ApplyOptions, Capabilities, Engine
from opendms.endpoints.settings import EndpointSettings, Flag
from opendms.errors import DatabaseMissingError
from tests.conformance.jsonl_engine.files import Folder

if TYPE_CHECKING:
    from opendms.changes import Applier, ApplyPlan
    from opendms.endpoints.base import EndpointURL, Target
    from opendms.endpoints.readback import TableRows
    from tests.conformance.jsonl_engine.target import JsonlTarget

__all__ = ["ENGINE", "JsonlEngine", "JsonlSettings"]


class JsonlSettings(EndpointSettings):
    """``Fsync``: flush every file written to disk before going on."""

    engine = "JSON lines"

    Fsync: Flag = False


class JsonlEngine(Engine):
    """A folder of JSON-lines files as a full-load and CDC target, read back whole."""

    name = "jsonl"
    title = "JSON lines"
    schemes = ("jsonl",)
    capabilities = Capabilities(target=True, cdc_target=True, read_back=True)
    settings = JsonlSettings

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        from tests.conformance.jsonl_engine.target import JsonlTarget

        folder = _folder(url, settings)
        folder.root.mkdir(exist_ok=True)
        return JsonlTarget(url, folder)

    def table_rows(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> TableRows:
        from tests.conformance.jsonl_engine.target import JsonlRows

        folder = _folder(url, settings)
        if not folder.root.is_dir():
            raise DatabaseMissingError(str(url), f"folder {str(folder.root)!r} does not exist")
        return JsonlRows(folder)

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        from tests.conformance.jsonl_engine.apply import JsonlApplier

        return JsonlApplier(cast("JsonlTarget", target).folder, task, plans)

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        folder = _folder(url, settings)
        count = len(folder.tables()) if folder.root.is_dir() else 0
        return f"JSON lines folder {folder.root} ({count} tables)"

    def same_database(self, a: EndpointURL, b: EndpointURL) -> bool:
        return os.path.realpath(a.path) == os.path.realpath(b.path)


def _folder(url: EndpointURL, settings: dict[str, Any]) -> Folder:
    """The folder of ``url`` (its parent must exist), with the endpoint's settings."""
    resolved = JsonlSettings.resolve(url, settings)
    root = Path(url.path)
    if not root.parent.is_dir():
        raise DatabaseMissingError(str(url), f"directory {str(root.parent)!r} does not exist")
    return Folder(root, resolved.Fsync)


ENGINE = JsonlEngine()
