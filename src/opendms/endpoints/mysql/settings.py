"""MySQL/MariaDB endpoint settings (DMS names). A mysql:// URL takes no parameters."""

from __future__ import annotations

from opendms.endpoints.settings import SettingsSpec

MYSQL_SETTINGS = SettingsSpec(
    engine="MySQL",
    applied={"role": str},
    defaults={"role": ""},
    not_applied=frozenset(
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
    ),
)
