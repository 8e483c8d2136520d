"""SQLite endpoint settings. A sqlite:// URL takes no parameters."""

from __future__ import annotations

from opendms.endpoints.settings import RoleSettings

__all__ = ["SqliteSettings"]


class SqliteSettings(RoleSettings):
    """A SQLite endpoint's settings: only the test-connection ``role``."""

    engine = "SQLite"
