"""A TCP proxy that delays every byte by a fixed time each way: a server on the loopback
made to answer like one across a network (where ``tc netem`` is not available).

Each direction of each connection reads what arrives and writes it out ``delay`` seconds
after it arrived, in order, so a request/response round trip takes two delays more and
throughput is not limited. Run it as a child process (``python -m tests.support.latency
--port P --to HOST:PORT --delay-ms D``) so it does not share the measured process's GIL;
:class:`DelayProxy` does that and waits until it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while chunk := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, chunk))
    except ConnectionError:
        pass
    queue.put_nowait((0.0, b""))
    await sender


async def _serve(port: int, host: str, target_port: int, delay: float) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


class DelayProxy:
    """The proxy as a child process: ``with DelayProxy(host, port, 0.002) as proxy:``
    then connect to ``127.0.0.1:proxy.port``."""

    def __init__(self, host: str, port: int, delay: float) -> None:
        self.target, self.delay, self.port = (host, port), delay, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DelayProxy:
        to = f"{self.target[0]}:{self.target[1]}"
        args = ["--port", str(self.port), "--to", to, "--delay-ms", str(self.delay * 1000)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.latency", *args], cwd=ROOT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)  # polling interval only: the deadline ends the wait
        self.__exit__(None, None, None)
        raise RuntimeError(f"the delay proxy on port {self.port} did not start")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--to", required=True, help="HOST:PORT")
    parser.add_argument("--delay-ms", type=float, required=True, help="each way")
    args = parser.parse_args()
    host, _, port = args.to.rpartition(":")
    asyncio.run(_serve(args.port, host, int(port), args.delay_ms / 1000))


if __name__ == "__main__":
    main()
