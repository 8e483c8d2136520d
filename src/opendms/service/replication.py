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
    from opendms.endpoints import open_capture
    from opendms.endpoints.base import EndpointURL

    spec = load_task_file(file)
    capture = open_capture(EndpointURL.parse(spec.source.url), name, spec.source.settings)
    try:
        capture.drop()
    finally:
        capture.close()
    return []


def _left_behind(name: str, source: str) -> list[str]:
    if source.startswith(("postgresql:", "postgres:")):
        from opendms.endpoints.postgres.replication import replication_names

        slot, publication = replication_names(name)
        return [
            f"replication slot {slot!r} and publication {publication!r} stay on "
            "the source and keep its WAL, and so do the DDL-capture objects (event "
            "triggers opendms_intercept_ddl/_drop, opendms_ddl_* tables); pass --file "
            f"TASK_FILE to drop them, or run SELECT pg_drop_replication_slot('{slot}'); "
            f"DROP PUBLICATION {publication};"
        ]
    if source.startswith("sqlite:"):
        return [
            "the capture triggers and change table stay in the source database; "
            "pass --file TASK_FILE to drop them"
        ]
    return []
