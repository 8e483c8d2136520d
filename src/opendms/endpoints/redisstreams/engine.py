"""The Redis Streams engine: ``redis://host:port/[<db>/][<prefix>]`` endpoints, a
full-load and CDC target that appends change records
(:mod:`opendms.endpoints.brokerrecords`) to a stream per table.

A table's stream is ``<KeyPrefix>:<schema>.<table>``; each entry has the fields
``record`` (the record in ``MessageFormat``: JSON text, or Arrow IPC bytes) and ``id``
(:func:`opendms.envelope.record_id`). A CDC batch's XADDs and the task's checkpoint key
(``<KeyPrefix>:checkpoint:<task>``) are written in one MULTI/EXEC transaction, so a crash
leaves both or neither. ``MaxLen`` (0: none) trims each stream to about that many
entries (``MAXLEN ~``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.brokerrecords import MessageFormat as Format
from opendms.endpoints.engine import ApplyOptions, Capabilities, Engine
from opendms.endpoints.settings import EndpointSettings, Text, Whole
from opendms.errors import EndpointError

if TYPE_CHECKING:
    from redis import Redis

    from opendms.changes import Applier, ApplyPlan
    from opendms.endpoints.base import Target
    from opendms.endpoints.readback import TableRows
    from opendms.endpoints.redisstreams.target import RedisTarget

__all__ = ["ENGINE", "RedisEngine", "RedisSettings"]

DEFAULT_PORT = 6379


class RedisSettings(EndpointSettings):
    """``KeyPrefix`` (empty: the URL's path after the database number, else
    ``opendms``), ``MessageFormat`` (json or arrow), ``MaxLen`` (0: streams untrimmed),
    ``TimeoutSeconds``."""

    engine = "Redis Streams"

    KeyPrefix: Text = ""
    MessageFormat: Format = Format.JSON
    MaxLen: Whole = 0
    TimeoutSeconds: Whole = 30

    @classmethod
    def of(cls, url: EndpointURL, settings: dict[str, Any]) -> RedisSettings:
        """The endpoint's settings, the key prefix filled in from the URL."""
        resolved = cls.resolve(url, settings)
        prefix = resolved.KeyPrefix or _path(url)[1] or "opendms"
        return resolved.model_copy(update={"KeyPrefix": prefix})

    def stream(self, schema: str, table: str) -> str:
        return f"{self.KeyPrefix}:{schema}.{table}"

    def checkpoint(self, task: str) -> str:
        return f"{self.KeyPrefix}:checkpoint:{task}"


def _path(url: EndpointURL) -> tuple[int, str]:
    """(database number, key prefix) of the URL's path."""
    head, _, rest = url.path.strip("/").partition("/")
    return (int(head), rest) if head.isdigit() else (0, url.path.strip("/"))


class RedisEngine(Engine):
    """Redis Streams as a target of change records, read back by folding them."""

    name = "redis"
    title = "Redis Streams"
    schemes = ("redis",)
    capabilities = Capabilities(target=True, cdc_target=True, read_back=True)
    settings = RedisSettings

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        from opendms.endpoints.redisstreams.target import RedisTarget

        resolved = RedisSettings.of(url, settings)
        return RedisTarget(url, resolved, connect(url, resolved))

    def table_rows(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> TableRows:
        from opendms.endpoints.redisstreams.target import RedisRows

        resolved = RedisSettings.of(url, settings)
        return RedisRows(url, resolved, connect(url, resolved))

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        from opendms.endpoints.redisstreams.apply import RedisApplier

        return RedisApplier(cast("RedisTarget", target), task, plans)

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        client = connect(url, RedisSettings.of(url, settings))
        try:
            info = guarded(url, lambda: client.info("server"))
        finally:
            client.close()
        return f"Redis Streams on Redis {info.get('redis_version', '?')} ({info.get('redis_mode')})"

    def same_database(self, a: EndpointURL, b: EndpointURL) -> bool:
        where = [(u.host, u.port or DEFAULT_PORT, _path(u)[0]) for u in (a, b)]
        return where[0] == where[1]


def connect(url: EndpointURL, settings: RedisSettings) -> Redis:
    """A client of ``url``'s server and database (it connects on first use)."""
    from redis import Redis

    return Redis(
        host=url.host or "127.0.0.1",
        port=url.port or DEFAULT_PORT,
        db=_path(url)[0],
        username=url.user or None,
        password=str(url.password) or None,
        socket_timeout=settings.TimeoutSeconds,
        socket_connect_timeout=settings.TimeoutSeconds,
    )


def guarded(url: EndpointURL, call: Any) -> Any:
    """``call()``, a Redis error as an EndpointError naming the endpoint."""
    from redis.exceptions import RedisError

    try:
        return call()
    except RedisError as exc:
        raise EndpointError(str(url), f"Redis: {type(exc).__name__}: {exc}") from None


ENGINE = RedisEngine()
