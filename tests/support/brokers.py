"""Message brokers for tests, each private, on a free port of 127.0.0.1:

- :class:`NatsServer`: ``nats-server -js`` with its JetStream store in the server's
  temporary directory;
- :class:`RedisServer`: ``redis-server`` without persistence (``--save ''``,
  ``--appendonly no``).

Debian packages ``nats-server`` and ``redis-server`` (``dev.sh test`` installs them)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.servers import HOST, _Server, _StartError, _stop_popen


def _binary(name: str, debian: str) -> str:
    for found in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if found and Path(found).exists():
            return found
    raise RuntimeError(f"{name} is missing (Debian: apt-get install {debian})")


class _BrokerServer(_Server):
    """One child process listening on ``self.port``."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        super().__init__(base_dir=None, startup_timeout=startup_timeout, port=None)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "server.log"

    def _command(self, tmp: Path) -> list[str]:
        raise NotImplementedError

    def _launch(self, tmp: Path) -> None:
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self._command(tmp), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True,
            )  # fmt: skip
        self._arm_watchdog(self._proc.pid, signal.SIGTERM)
        self._wait_ready()

    def _ready(self) -> bool:
        with socket.create_connection((HOST, self.port), timeout=1) as sock:
            return self._probe(sock)

    def _probe(self, sock: socket.socket) -> bool:
        return True

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline, last = self._deadline(), ""
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise _StartError(f"{self.kind} exited with {rc}", self.log_path, retry=True)
            try:
                if self._ready():
                    return
            except OSError as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise _StartError(f"timed out waiting for {self.kind} ({last})", self.log_path)
            time.sleep(0.05)  # polling interval only: the deadline above fails the start

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_popen(proc, signal.SIGTERM, timeout=5)  # throw-away data


class NatsServer(_BrokerServer):
    kind = "nats-server"
    _prefix = "opendms-nats-"

    def _command(self, tmp: Path) -> list[str]:
        return [_binary("nats-server", "nats-server"), "-js", "-a", HOST, "-p", str(self.port),
                "-sd", str(tmp / "js")]  # fmt: skip

    def _probe(self, sock: socket.socket) -> bool:
        return sock.recv(4096).startswith(b"INFO ")

    def url(self, prefix: str = "") -> str:
        """A ``nats://`` endpoint URL of this server (``prefix``: the subject prefix)."""
        return f"nats://{HOST}:{self.port}/{prefix}"

    @property
    def server_url(self) -> str:
        """The server's address as NATS clients take it."""
        return f"nats://{HOST}:{self.port}"


class RedisServer(_BrokerServer):
    kind = "redis-server"
    _prefix = "opendms-redis-"

    def _command(self, tmp: Path) -> list[str]:
        return [_binary("redis-server", "redis-server"), "--port", str(self.port),
                "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(tmp)]  # fmt: skip

    def _probe(self, sock: socket.socket) -> bool:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")

    def url(self, prefix: str = "") -> str:
        """A ``redis://`` endpoint URL of this server (``prefix``: the key prefix)."""
        return f"redis://{HOST}:{self.port}/{prefix}"
