"""The NATS JetStream engine: ``nats://host:port`` endpoints, a full-load and CDC target
that publishes change records (:mod:`opendms.endpoints.brokerrecords`).

Each task has a stream of its own, ``StreamName`` (default ``OPENDMS_<prefix>_<task>``),
holding its subjects ``<SubjectPrefix>.<task>.<schema>.<table>``, one per table (each
name one token: characters other than letters, digits, ``-`` and ``_`` become ``_``).
The stream is created when missing with a duplicate window of ``DuplicateWindowSeconds``
(120). CDC messages carry ``Nats-Msg-Id`` = :func:`opendms.envelope.record_id`, so a
batch published again after a crash (before its checkpoint was written) is dropped by
JetStream within that window. The checkpoint lives in the key-value bucket
``<stream>_checkpoints``, key = the task, written after the batch's acks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.brokerrecords import MessageFormat as Format
from opendms.endpoints.engine import ApplyOptions, Capabilities, Engine
from opendms.endpoints.settings import EndpointSettings, Text, Whole

if TYPE_CHECKING:
    from opendms.changes import Applier, ApplyPlan
    from opendms.endpoints.base import Target
    from opendms.endpoints.natsjs.client import JetStream
    from opendms.endpoints.natsjs.target import NatsTarget
    from opendms.endpoints.readback import TableRows

__all__ = ["ENGINE", "Names", "NatsEngine", "NatsSettings"]

DEFAULT_PORT = 4222


class NatsSettings(EndpointSettings):
    """``SubjectPrefix`` (empty: the URL's path, ``nats://host:port/<prefix>``, else
    ``opendms``), ``StreamName`` (empty: ``OPENDMS_<prefix>_<task>``),
    ``DuplicateWindowSeconds``, ``MessageFormat`` (json or arrow), ``MaxPendingAcks``
    (publishes awaiting their ack at once), ``TimeoutSeconds``."""

    engine = "NATS JetStream"

    SubjectPrefix: Text = ""
    StreamName: Text = ""
    DuplicateWindowSeconds: Whole = 120
    MessageFormat: Format = Format.JSON
    MaxPendingAcks: Whole = 4000
    TimeoutSeconds: Whole = 30

    @classmethod
    def of(cls, url: EndpointURL, settings: dict[str, Any]) -> NatsSettings:
        """The endpoint's settings, the subject prefix filled in from the URL."""
        resolved = cls.resolve(url, settings)
        prefix = resolved.SubjectPrefix or url.path.strip("/") or "opendms"
        return resolved.model_copy(update={"SubjectPrefix": prefix})


@dataclass(frozen=True)
class Names:
    """Where one task's records go: its stream, and a subject per table."""

    settings: NatsSettings
    task: str
    """The task as a subject token (``default`` outside a task)."""

    @classmethod
    def of(cls, url: EndpointURL, settings: dict[str, Any], task: str | None) -> Names:
        from opendms.endpoints.natsjs.client import token

        return cls(NatsSettings.of(url, settings), token(task or "default"))

    def stream(self) -> str:
        """The task's stream."""
        from opendms.endpoints.natsjs.client import token

        prefix = token(self.settings.SubjectPrefix)
        return self.settings.StreamName or f"OPENDMS_{prefix}_{self.task}"

    def subjects(self) -> str:
        """The filter of the task's subjects, ``<prefix>.<task>.>``."""
        return f"{self.settings.SubjectPrefix}.{self.task}.>"

    def subject(self, schema: str, table: str) -> str:
        """The subject of one table's records."""
        from opendms.endpoints.natsjs.client import token

        return f"{self.settings.SubjectPrefix}.{self.task}.{token(schema)}.{token(table)}"


class NatsEngine(Engine):
    """NATS JetStream as a target of change records, read back by folding them."""

    name = "nats"
    title = "NATS JetStream"
    schemes = ("nats",)
    capabilities = Capabilities(target=True, cdc_target=True, read_back=True)
    settings = NatsSettings

    def open_target(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> Target:
        from opendms.endpoints.natsjs.target import NatsTarget

        names = Names.of(url, settings, task)
        conn = connect(url, names.settings)
        try:
            window = float(names.settings.DuplicateWindowSeconds)
            conn.ensure_stream(names.stream(), names.subjects(), window)
        except BaseException:
            conn.close()
            raise
        return NatsTarget(url, names, conn)

    def table_rows(
        self, url: EndpointURL, settings: dict[str, Any], task: str | None = None
    ) -> TableRows:
        from opendms.endpoints.natsjs.target import NatsRows

        return NatsRows(url, Names.of(url, settings, task))

    def applier(
        self, target: Target, task: str, plans: list[ApplyPlan], opts: ApplyOptions
    ) -> Applier:
        from opendms.endpoints.natsjs.apply import NatsApplier

        return NatsApplier(cast("NatsTarget", target), task, plans)

    def check(self, url: EndpointURL, settings: dict[str, Any]) -> str:
        conn = connect(url, NatsSettings.of(url, settings))
        try:
            return conn.describe()
        finally:
            conn.close()

    def same_database(self, a: EndpointURL, b: EndpointURL) -> bool:
        return (a.host, a.port or DEFAULT_PORT) == (b.host, b.port or DEFAULT_PORT)


def connect(url: EndpointURL, settings: NatsSettings) -> JetStream:
    """A JetStream connection to ``url``'s server (user and password from the URL)."""
    from opendms.endpoints.natsjs.client import JetStream

    server = f"nats://{url.host or '127.0.0.1'}:{url.port or DEFAULT_PORT}"
    options: dict[str, Any] = {"pending_size": 64 * 1024 * 1024}
    if url.user:
        options |= {"user": url.user, "password": str(url.password)}
    timeout = float(settings.TimeoutSeconds)
    where = f"nats://{url.host}:{url.port or DEFAULT_PORT}"
    return JetStream(server, where, options, timeout, settings.MaxPendingAcks)


ENGINE = NatsEngine()
