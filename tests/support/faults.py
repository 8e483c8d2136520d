"""Faults for tests: a network namespace whose link can be cut, a write load that
survives server restarts, killed backend connections, a target disk that fills up.

Everything here acts only on the test's own private servers and namespaces, and undoes
itself (context managers), so a failed test leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.crash import Writer
from tests.support.sql import connect, query

_NUMBERS = itertools.count(1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class NetCut:
    """A network namespace joined to this one by a veth pair: a server started inside
    it (``server.in_netns(ns.name, ns.inside)``) is reached at ``ns.inside``;
    :meth:`cut` takes the link down (packets vanish: no reset, no refusal, as when a
    network fails) and :meth:`restore` brings it back."""

    def __init__(self) -> None:
        n = (os.getpid() * 7 + next(_NUMBERS)) % 250 + 1
        self.name = f"opendms-fault-{os.getpid()}-{n}"
        self.host_end, self.ns_end = f"odh{n}x{os.getpid() % 1000}", f"odn{n}x{os.getpid() % 1000}"
        self.outside, self.inside = f"10.251.{n}.1", f"10.251.{n}.2"

    def __enter__(self) -> NetCut:
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_end, "type", "veth", "peer", "name", self.ns_end)
            _ip("link", "set", self.ns_end, "netns", self.name)
            _ip("addr", "add", f"{self.outside}/24", "dev", self.host_end)
            _ip("link", "set", self.host_end, "up")
            inside = ("netns", "exec", self.name, "ip")
            _ip(*inside, "addr", "add", f"{self.inside}/24", "dev", self.ns_end)
            _ip(*inside, "link", "set", self.ns_end, "up")
            _ip(*inside, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def cut(self) -> None:
        _ip("link", "set", self.host_end, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_end, "up")

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.host_end)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", self.name)


def can_cut_network() -> bool:
    """Network namespaces need root (CAP_SYS_ADMIN) and iproute2."""
    return os.geteuid() == 0 and shutil.which("ip") is not None


class Load(Writer):
    """:class:`~tests.support.crash.Writer` in a thread for a ``with`` block: a write
    load on ``ledger`` that reconnects after a fault and stops when the block ends."""

    def __init__(self, url: str, first_id: int, seed: int, rows: int) -> None:
        super().__init__(url, first_id, seed, rows=rows)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def terminate_pg_backends(url: str, database: str) -> int:
    """pg_terminate_backend every other session of ``database`` (WAL senders included);
    how many were terminated."""
    conn = connect(url)
    try:
        rows = query(
            conn,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        return int(rows[0][0])
    finally:
        conn.close()


def kill_mysql_connections(url: str, match: Callable[[tuple[Any, ...]], bool]) -> int:
    """KILL the MariaDB connections whose SHOW PROCESSLIST row ``match`` accepts."""
    conn = connect(url)
    try:
        killed = 0
        for row in query(conn, "SHOW FULL PROCESSLIST"):
            if row[0] != conn.thread_id() and match(tuple(row)):
                with contextlib.suppress(Exception):
                    query(conn, f"KILL {int(row[0])}")
                    killed += 1
        return killed
    finally:
        conn.close()


@contextlib.contextmanager
def small_disk(size_mb: int, owner: tuple[int, int] | None = None) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted on a new folder (removed afterwards)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="opendms-disk-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(folder)],
        check=True,
        capture_output=True,
    )
    try:
        if owner is not None:
            os.chown(folder, *owner)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        with contextlib.suppress(OSError):
            folder.rmdir()


def fill(folder: Path, leave_kb: int = 64) -> Path:
    """Fill ``folder``'s filesystem up to ``leave_kb`` KiB free; the filler's path (delete
    it to free the space)."""
    filler = folder / "filler.bin"
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize - leave_kb * 1024
    with filler.open("wb") as out:
        chunk = b"\0" * (1024 * 1024)
        while free > 0:
            out.write(chunk[: min(len(chunk), free)])
            free -= len(chunk)
    return filler
