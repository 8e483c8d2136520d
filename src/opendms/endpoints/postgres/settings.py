"""PostgreSQL endpoint settings (DMS names) and the libpq URL parameters we pass on."""

from __future__ import annotations

from opendms.endpoints.settings import Flag, RoleSettings, Text

__all__ = ["LIBPQ_PARAMS", "PgSettings"]


# libpq connection parameters a postgresql:// URL may carry (``replication`` and the
# connection target itself are opendms's to set).
LIBPQ_PARAMS = frozenset(
    [
        "application_name",
        "channel_binding",
        "client_encoding",
        "connect_timeout",
        "fallback_application_name",
        "gssencmode",
        "gsslib",
        "gssdelegation",
        "keepalives",
        "keepalives_count",
        "keepalives_idle",
        "keepalives_interval",
        "krbsrvname",
        "load_balance_hosts",
        "options",
        "passfile",
        "require_auth",
        "requirepeer",
        "service",
        "ssl_max_protocol_version",
        "ssl_min_protocol_version",
        "sslcert",
        "sslcertmode",
        "sslcompression",
        "sslcrl",
        "sslcrldir",
        "sslkey",
        "sslmode",
        "sslnegotiation",
        "sslpassword",
        "sslrootcert",
        "sslsni",
        "target_session_attrs",
        "tcp_user_timeout",
    ]
)


class PgSettings(RoleSettings):
    """A PostgreSQL endpoint's settings: DDL capture (``CaptureDdls``, with its audit
    table and trigger in ``DdlArtifactsSchema``) and the test-connection ``role``."""

    engine = "PostgreSQL"
    not_applied = frozenset(
        [
            "AfterConnectScript",
            "BabelfishDatabaseName",
            "DatabaseMode",
            "DisableUnicodeSourceFilter",
            "ExecuteTimeout",
            "FailTasksOnLobTruncation",
            "HeartbeatEnable",
            "HeartbeatFrequency",
            "HeartbeatSchema",
            "MapBooleanAsBoolean",
            "MapJsonbAsClob",
            "MapLongVarcharAs",
            "MaxFileSize",
            "PluginName",
            "SlotName",
            "TrimSpaceInChar",
        ]
    )
    url_params = LIBPQ_PARAMS

    CaptureDdls: Flag = True
    DdlArtifactsSchema: Text = "public"
