"""MySQL/MariaDB endpoint settings (DMS names). A mysql:// URL takes no parameters."""

from __future__ import annotations

from opendms.endpoints.settings import RoleSettings

__all__ = ["MySqlSettings"]


class MySqlSettings(RoleSettings):
    """A MySQL/MariaDB endpoint's settings: only the test-connection ``role``."""

    engine = "MySQL"
    not_applied = frozenset(
        [
            "AfterConnectScript",
            "CleanSourceMetadataOnMismatch",
            "EventsPollInterval",
            "ExecuteTimeout",
            "Initstmt",
            "MaxFileSize",
            "ParallelLoadThreads",
            "ServerTimezone",
            "TargetDbType",
        ]
    )
