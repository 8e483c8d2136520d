"""A JetStream connection used from synchronous code: nats-py runs on a private event
loop in a thread of its own, and each call waits for its coroutine there.

A task's stream holds its subjects (``<prefix>.<task>.>``), with a duplicate window in
which JetStream drops a message whose ``Nats-Msg-Id`` it has already stored; a key-value
bucket beside it (``<stream>_checkpoints``) holds the task's checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from opendms.errors import AuthenticationError, ConnectError, EndpointError

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
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
        self._ack_sub: _Acks | None = None
        self._pending = pending
        self._publishing = threading.Lock()  # one publishing run at a time: one _Acks

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the connection's loop; nats errors become EndpointErrors."""
        return self.wait(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def wait(self, future: Future[_T]) -> _T:
        """The result of a coroutine running on the loop; nats errors as EndpointErrors."""
        try:
            return future.result()
        except EndpointError:
            raise
        except Exception as exc:
            raise _endpoint_error(self.where, exc) from None

    def ensure_stream(self, name: str, subjects: str, duplicates: float) -> None:
        """Create stream ``name`` for ``subjects`` (a filter) when missing; an existing
        stream is used as it is, ``subjects`` added to it when it lacks them."""
        self.run(self._ensure_stream(name, subjects, duplicates))

    async def _ensure_stream(self, name: str, subjects: str, duplicates: float) -> None:
        from nats.js.api import StreamConfig
        from nats.js.errors import NotFoundError

        try:
            info = await self.js.stream_info(name)
        except NotFoundError:
            config = StreamConfig(name=name, subjects=[subjects], duplicate_window=duplicates)
            await self.js.add_stream(config)
            return
        held = info.config.subjects or []
        if subjects not in held:
            await self.js.update_stream(replace(info.config, subjects=[*held, subjects]))

    def publish(self, chunks: Iterable[Sequence[Message]]) -> int:
        """Publish the messages of ``chunks`` in order, the acks awaited together (the
        client bounds the acks outstanding); returns how many JetStream dropped as
        duplicates. The loop publishes a chunk while the caller makes the next one."""
        with self._publishing:
            queue: asyncio.Queue[Sequence[Message] | None] = asyncio.Queue()
            done = asyncio.run_coroutine_threadsafe(self._publish(queue), self._loop)
            try:
                for chunk in chunks:
                    self._loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException:  # a record that cannot be encoded: end the run first
                self._loop.call_soon_threadsafe(queue.put_nowait, None)
                with contextlib.suppress(Exception):
                    done.result()
                raise
            self._loop.call_soon_threadsafe(queue.put_nowait, None)
            return self.wait(done)

    async def _publish(self, queue: asyncio.Queue[Sequence[Message] | None]) -> int:
        acks = await self._acks()
        try:
            while (chunk := await queue.get()) is not None:
                for subject, body, msg_id in chunk:
                    await acks.room()
                    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
                    await self.nc.publish(subject, body, reply=acks.reply(), headers=headers)
            return await acks.all_in(self.timeout)
        finally:
            acks.reset()

    async def _acks(self) -> _Acks:
        if self._ack_sub is None:
            self._ack_sub = _Acks(self.nc.new_inbox(), self._pending)
            await self.nc.subscribe(self._ack_sub.prefix + ".>", cb=self._ack_sub.on_ack)
        return self._ack_sub

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


class _Acks:
    """The acks of one publishing run: a reply subject per message under ``prefix``, at
    most ``window`` outstanding (what nats-py's ``publish_async`` does, with less work a
    message: no future each, the ack's JSON only read when it reports an error)."""

    def __init__(self, prefix: str, window: int) -> None:
        self.prefix, self.window = prefix, max(window, 1)
        self._room = asyncio.Event()
        self._done = asyncio.Event()
        self.run = 0
        self.reset()

    def reset(self) -> None:
        """Start a new run (a late ack of an earlier, failed run is ignored)."""
        self.run += 1
        self._current = f"{self.prefix}.{self.run}."
        self.sent = self.acked = self.duplicates = 0
        self.errors: list[str] = []
        self._room.set()

    def reply(self) -> str:
        self.sent += 1
        if self.sent - self.acked >= self.window:
            self._room.clear()
        return f"{self._current}{self.sent}"

    async def room(self) -> None:
        await self._room.wait()

    async def on_ack(self, msg: Msg) -> None:
        if not msg.subject.startswith(self._current):
            return
        data = msg.data
        if not data.startswith(b'{"stream"') or b'"error"' in data:
            self.errors.append(_ack_error(msg))
        elif b'"duplicate"' in data and json.loads(data).get("duplicate"):
            self.duplicates += 1
        self.acked += 1
        if self.sent - self.acked < self.window:
            self._room.set()
        if self.acked >= self.sent:
            self._done.set()

    async def all_in(self, timeout: float) -> int:
        """Wait for every ack; the duplicates (an ack that is an error raises)."""
        while self.acked < self.sent:
            self._done.clear()
            if self.acked >= self.sent:
                break
            await asyncio.wait_for(self._done.wait(), timeout)
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} publishes failed, first: {self.errors[0]}")
        return self.duplicates


def _ack_error(msg: Msg) -> str:
    """What a failed publish's reply says (an error object, or no responders)."""
    status = (msg.headers or {}).get("Status")
    if status == "503":
        return "no stream takes the subject (no responders)"
    return msg.data.decode("utf-8", "replace")[:300]


def _endpoint_error(where: str, exc: Exception) -> EndpointError:
    """A nats-py failure as the EndpointError that says what it means: a refused login,
    an unreachable server, JetStream off (an API request nobody answers), or as it is."""
    from nats.errors import NoRespondersError, NoServersError
    from nats.js.errors import ServiceUnavailableError

    text = f"{type(exc).__name__}: {exc}"
    if "authorization violation" in text.lower():
        return AuthenticationError(where, "the NATS server refused the user and password")
    if isinstance(exc, NoServersError | ConnectionError | OSError | asyncio.TimeoutError):
        return ConnectError(where, f"cannot connect to the NATS server ({text})")
    if isinstance(exc, NoRespondersError | ServiceUnavailableError):
        return EndpointError(where, "JetStream is not enabled on the NATS server (nats-server -js)")
    return EndpointError(where, f"NATS: {text}")


async def _connect(server: str, options: dict[str, Any], timeout: float) -> Client:
    """Connect once (two attempts at most); errors are raised, not logged."""
    import nats

    connecting = nats.connect(
        server,
        connect_timeout=timeout,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.2,
        error_cb=_ignore,
        **options,
    )
    return await asyncio.wait_for(connecting, timeout * 2 + 1)


async def _ignore(error: Exception) -> None:
    """Connection errors reach the caller as exceptions (nats-py would log them too)."""
