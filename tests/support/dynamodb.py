"""DynamoDB-compatible servers for tests, each private, on a free port of 127.0.0.1:

- :class:`DynaliteServer`: dynalite (npm; DynamoDB on LevelDB) run with the machine's
  Node.js, installed on first use into ``~/.cache/opendms/npm`` (``npm install``);
- :class:`MotoDynamoDBServer`: moto's server mode (``moto[server]``, a dev dependency),
  which also serves the DynamoDB Streams API.

What each does not emulate is listed in the README's DynamoDB notes once the engine
lands. Both take any credentials; :meth:`client` gives a boto3 client of the server."""

from __future__ import annotations

import abc
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.servers import _Server, _StartError, _stop_popen

DYNALITE_VERSION = "4.0.0"
NPM_DIR = Path(os.environ.get("OPENDMS_NPM_DIR", Path.home() / ".cache" / "opendms" / "npm"))
REGION = "us-east-1"


def dynalite_cli() -> Path:
    """dynalite's ``cli.js``, installed with npm when missing."""
    cli = NPM_DIR / "node_modules" / "dynalite" / "cli.js"
    if cli.exists():
        return cli
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("dynalite needs Node.js and npm (Debian: apt-get install nodejs npm)")
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    with (NPM_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test workers may ask at the same time
        if not cli.exists():
            _npm_install(npm, cli)
    return cli


def _npm_install(npm: str, cli: Path) -> None:
    done = subprocess.run(
        [npm, "install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund",
         "--loglevel=error", f"dynalite@{DYNALITE_VERSION}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode != 0 or not cli.exists():
        raise RuntimeError(f"npm install dynalite failed: {done.stderr.strip()[-2000:]}")


class _DynamoServer(_Server):
    """A DynamoDB API on ``endpoint_url`` served by one child process."""

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        super().__init__(base_dir=None, startup_timeout=startup_timeout, port=None)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.tmpdir / "server.log"

    @abc.abstractmethod
    def _command(self, tmp: Path) -> list[str]:
        """The server's command line (it listens on ``self.port``)."""

    def _launch(self, tmp: Path) -> None:
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [*self._netns_prefix(), *self._command(tmp)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                start_new_session=True,
            )
        self._arm_watchdog(self._proc.pid, signal.SIGTERM)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline, client, last = self._deadline(), self.client(), None
        while True:
            rc = self._proc.poll()
            if rc is not None:
                raise _StartError(f"{self.kind} exited with {rc}", self.log_path, retry=True)
            try:
                client.list_tables()
                return
            except Exception as exc:
                last = exc
            if time.monotonic() > deadline:
                raise _StartError(f"timed out waiting for {self.kind} ({last})", self.log_path)
            time.sleep(0.1)  # polling interval only: the deadline above fails the start

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_popen(proc, signal.SIGTERM, timeout=5)  # throw-away data

    def client(self, service: str = "dynamodb") -> Any:
        """A boto3 client of this server (``dynamodb`` or ``dynamodbstreams``)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(connect_timeout=2, read_timeout=30, retries={"max_attempts": 1}),
        )

    def url(self) -> str:
        """An opendms endpoint URL for this server."""
        return f"dynamodb://?region={REGION}&endpoint_url={self.endpoint_url}"


class DynaliteServer(_DynamoServer):
    kind = "dynalite"
    _prefix = "opendms-dynalite-"

    def _command(self, tmp: Path) -> list[str]:
        node = shutil.which("node") or "node"
        where = ["--host", self.listen_host, "--port", str(self.port)]
        return [str(node), str(dynalite_cli()), *where, "--path", str(tmp / "db")]


class MotoDynamoDBServer(_DynamoServer):
    kind = "moto"
    _prefix = "opendms-moto-"

    def _command(self, tmp: Path) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", self.listen_host, "-p", str(self.port)]


def create_table(client: Any, name: str, keys: list[tuple[str, str]], **extra: Any) -> None:
    """Create on-demand table ``name`` keyed by ``keys`` (``(attribute, type)``: the
    partition key, then the sort key if any) and wait until it is ACTIVE."""
    kinds = ("HASH", "RANGE")
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": a, "KeyType": k}
            for (a, _), k in zip(keys, kinds[: len(keys)], strict=True)
        ],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in keys],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})


def put_items(client: Any, name: str, items: list[dict[str, Any]]) -> None:
    """Write ``items`` (DynamoDB JSON) with BatchWriteItem, 25 a call, resending what the
    server leaves unprocessed."""
    for start in range(0, len(items), 25):
        pending: dict[str, Any] = {
            name: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        }
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
