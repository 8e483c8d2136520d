"""The NATS JetStream engine: ``nats://host:port`` endpoints, a full-load and CDC target
that publishes change records (:mod:`opendms.endpoints.brokerrecords`).

Subjects are ``<SubjectPrefix>.<schema>.<table>`` (each name one token: characters
other than letters, digits, ``-`` and ``_`` become ``_``), all in one stream,
``StreamName`` (default ``OPENDMS_<prefix>``), created when missing with a duplicate
window of ``DuplicateWindowSeconds`` (120). CDC messages carry ``Nats-Msg-Id`` =
:func:`opendms.envelope.record_id`, so a batch published again after a crash (before its
checkpoint was written) is dropped by JetStream within that window. Checkpoints live in
the key-value bucket ``<stream>_checkpoints``, one key per task, written after the
batch's acks."""

from __future__ import annotations

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

__all__ = ["ENGINE", "NatsEngine", "NatsSettings"]

DEFAULT_PORT = 4222


class NatsSettings(EndpointSettings):
    """``SubjectPrefix`` (empty: the URL's path, ``nats://host:port/<prefix>``, else
    ``opendms``), ``StreamName`` (empty: ``OPENDMS_<prefix>``),
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

    def stream(self) -> str:
        from opendms.endpoints.natsjs.client import token

        return self.StreamName or f"OPENDMS_{token(self.SubjectPrefix)}"

    def subject(self, schema: str, table: str) -> str:
        from opendms.endpoints.natsjs.client import token

        return f"{self.SubjectPrefix}.{token(schema)}.{token(table)}"


class NatsEngine(Engine):
    """NATS JetStream as a target of change records, read back by folding them."""

    name = "nats"
    title = "NATS JetStream"
    schemes = ("nats",)
    capabilities = Capabilities(target=True, cdc_target=True, read_back=True)
    settings = NatsSettings

    def open_target(self, url: EndpointURL, settings: dict[str, Any]) -> Target:
        from opendms.endpoints.natsjs.target import NatsTarget

        resolved = NatsSettings.of(url, settings)
        conn = connect(url, resolved)
        try:
            conn.ensure_stream(
                resolved.stream(),
                [f"{resolved.SubjectPrefix}.>"],
                float(resolved.DuplicateWindowSeconds),
            )
        except BaseException:
            conn.close()
            raise
        return NatsTarget(url, resolved, conn)

    def table_rows(self, url: EndpointURL, settings: dict[str, Any]) -> TableRows:
        from opendms.endpoints.natsjs.target import NatsRows

        resolved = NatsSettings.of(url, settings)
        return NatsRows(url, resolved)

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
