"""Lake endpoint: ``file:///dir`` (local) and ``s3://bucket/prefix`` (S3-compatible).

Settings come from the task's endpoint settings (keys or a DMS extra
connection attribute string) and from the URL query; for S3 the URL query may
name ``endpoint_url`` and ``region``, and credentials come from the standard
AWS environment variables.
"""

from __future__ import annotations

import os
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.lake.settings import URL_KEYS, LakeSettings, lake_settings
from opendms.endpoints.lake.storage import Storage, check_storage, open_storage
from opendms.endpoints.lake.target import LakeTarget
from opendms.errors import DatabaseMissingError

__all__ = ["LakeSettings", "LakeTarget", "check", "open_target"]


def _settings(url: EndpointURL, settings: dict[str, Any]) -> dict[str, Any]:
    query = {k: v for k, v in url.query.items() if k.lower() not in URL_KEYS}
    return {**query, **settings}


def open_target(url: EndpointURL, settings: dict[str, Any]) -> LakeTarget:
    merged = _settings(url, settings)
    storage = open_storage(url, settings)
    _check_local_parent(storage, url)
    return LakeTarget(url, storage, lake_settings(merged))


def _check_local_parent(storage: Storage, url: EndpointURL) -> None:
    """A local lake folder is created when missing, as an S3 prefix is, but only inside
    an existing folder: a mistyped path never grows a tree from the filesystem root."""
    if storage.atomic_put or os.path.isdir(storage.root):
        return
    parent = os.path.dirname(storage.root)
    if not os.path.isdir(parent):
        raise DatabaseMissingError(str(url), f"directory {parent!r} does not exist")


def applier(target: LakeTarget, task: str, plans: list[Any], opts: Any) -> Any:
    from opendms.endpoints.lake.cdc import LakeApplier

    return LakeApplier(target, task, plans)


def check(url: EndpointURL, settings: dict[str, Any]) -> str:
    lake_settings(_settings(url, settings))
    return check_storage(open_storage(url, settings), url)
