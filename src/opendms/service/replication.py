"""A deleted CDC task's capture objects on its source (replication slot and
publication, DDL-capture event triggers, SQLite capture triggers): dropped when the
task file is at hand, else left with a warning that says how to drop them."""

from __future__ import annotations

from pathlib import Path

from opendms.config import load_task_file


def drop_replication(name: str, source: str, file: Path | None) -> list[str]:
    """Drop the CDC capture objects of task ``name`` (``source``: its masked source URL;
    ``file``: its task file, to connect with), which would otherwise keep WAL or keep
    recording changes on the source. Without ``file``: the warnings to show instead."""
    if file is None:
        return _left_behind(name, source)
    from opendms.endpoints import open_change_source
    from opendms.endpoints.base import EndpointURL

    spec = load_task_file(file)
    capture = open_change_source(EndpointURL.parse(spec.source.url), name, spec.source.settings)
    try:
        capture.drop()
    finally:
        capture.close()
    return []


def _left_behind(name: str, source: str) -> list[str]:
    from opendms.endpoints import engines

    scheme = source.split(":", 1)[0]
    engine = engines().get(scheme)
    return engine.capture_left_behind(name) if engine is not None else []
