"""A JetStream connection used from synchronous code: nats-py runs on a private event
loop in a thread of its own, and each call waits for its coroutine there.

One stream holds an endpoint's subjects (``<prefix>.>``), with a duplicate window in
which JetStream drops a message whose ``Nats-Msg-Id`` it has already stored; a key-value
bucket beside it (``<stream>_checkpoints``) holds each task's checkpoint."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from opendms.errors import EndpointError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

_T = TypeVar("_T")
Message = tuple[str, bytes, str | None]
"""(subject, body, message id or None)."""

_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def token(name: str) -> str:
    """A name as one subject / stream / bucket / key token (``_`` for each other char)."""
    return _TOKEN.sub("_", name) or "_"


class JetStream:
    """One connection to a NATS server with JetStream, for one stream."""

    def __init__(
        self, server: str, where: str, options: dict[str, Any], timeout: float, pending: int
    ) -> None:
        self.where, self.timeout = where, timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="opendms-nats", daemon=True
        )
        self._thread.start()
        try:
            self.nc: Client = self.run(_connect(server, options, timeout))
        except BaseException:
            self._stop_loop()
            raise
        self.js: JetStreamContext = self.nc.jetstream(
            timeout=timeout, publish_async_max_pending=pending
        )
        self._kv: KeyValue | None = None

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the connection's loop; nats errors become EndpointErrors."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except EndpointError:
            raise
        except Exception as exc:
            raise EndpointError(self.where, f"NATS: {type(exc).__name__}: {exc}") from None

    def ensure_stream(self, name: str, subjects: list[str], duplicates: float) -> None:
        """Create stream ``name`` when missing (an existing one is used as it is)."""
        self.run(self._ensure_stream(name, subjects, duplicates))

    async def _ensure_stream(self, name: str, subjects: list[str], duplicates: float) -> None:
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        try:
            await self.js.stream_info(name)
        except NotFoundError:
            config = StreamConfig(name=name, subjects=subjects, duplicate_window=duplicates)
            await self.js.add_stream(config)

    def publish(self, messages: Sequence[Message], stream: str) -> int:
        """Publish ``messages`` in order, the acks awaited together (the client bounds the
        acks outstanding); returns how many JetStream dropped as duplicates."""
        return self.run(self._publish(messages, stream)) if messages else 0

    async def _publish(self, messages: Sequence[Message], stream: str) -> int:
        futures = []
        for subject, body, msg_id in messages:
            headers = {"Nats-Msg-Id": msg_id} if msg_id else None
            futures.append(await self.js.publish_async(subject, body, headers=headers))
        acks = await asyncio.gather(*futures)
        return sum(1 for ack in acks if ack.duplicate)

    def read(self, stream: str, subject: str) -> Iterator[bytes]:
        """The bodies of every message of ``subject`` in ``stream``, in stream order."""
        return iter(self.run(self._read(stream, subject)))

    async def _read(self, stream: str, subject: str) -> list[bytes]:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig

        config = ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30.0)
        sub = await self.js.pull_subscribe(subject, stream=stream, config=config)
        try:
            left = (await sub.consumer_info()).num_pending or 0
            out: list[bytes] = []
            while left > 0:
                try:
                    msgs = await sub.fetch(min(left, 1000), timeout=self.timeout)
                except NatsTimeout:
                    raise EndpointError(self.where, f"NATS: reading {subject} timed out") from None
                out += [m.data for m in msgs]
                left -= len(msgs)
            return out
        finally:
            await sub.unsubscribe()

    def kv_get(self, bucket: str, key: str) -> str | None:
        return self.run(self._kv_get(bucket, key))

    async def _kv_get(self, bucket: str, key: str) -> str | None:
        from nats.js.errors import KeyNotFoundError

        kv = await self._bucket(bucket)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        return None if entry.value is None else entry.value.decode("utf-8")

    def kv_put(self, bucket: str, key: str, value: str) -> None:
        self.run(self._kv_put(bucket, key, value))

    async def _kv_put(self, bucket: str, key: str, value: str) -> None:
        await (await self._bucket(bucket)).put(key, value.encode("utf-8"))

    async def _bucket(self, bucket: str) -> KeyValue:
        from nats.js.errors import BucketNotFoundError

        if self._kv is None:
            try:
                self._kv = await self.js.key_value(bucket)
            except BucketNotFoundError:
                self._kv = await self.js.create_key_value(bucket=bucket, history=1)
        return self._kv

    def describe(self) -> str:
        """The server's version and the account's JetStream use (DMS test connection)."""
        return self.run(self._describe())

    async def _describe(self) -> str:
        info = await self.js.account_info()
        version = self.nc.connected_server_version
        return (
            f"NATS JetStream server {version.major}.{version.minor}.{version.patch}: "
            f"{info.streams} streams, {info.memory + info.storage} bytes stored"
        )

    def close(self) -> None:
        try:
            self.run(self._close())
        finally:
            self._stop_loop()

    async def _close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def _connect(server: str, options: dict[str, Any], timeout: float) -> Client:
    import nats

    return await nats.connect(
        server,
        connect_timeout=timeout,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        **options,
    )
