"""DMS endpoints and replication tasks as records in the server's state.

An endpoint record keeps what ``CreateEndpoint`` was given (its password too, which no
response shows); :func:`endpoint_url` maps it to the opendms URL and endpoint settings a
task file takes. Records live in a SQLite file behind the :class:`ResourceStore`
Protocol.

Passwords are encrypted at rest (Fernet, with the server's secret key): a record written
by an older version with a plain password is encrypted when first read. A password given
as ``env:VARNAME`` names an environment variable, read only when a task file is written
or a connection tested (:func:`resolve_password`)."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import string
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from cryptography.fernet import Fernet, InvalidToken

from opendms.config import parse_extra_connection_attributes
from opendms.errors import ConfigError

ACCOUNT = "000000000000"
# DMS engine names -> opendms URL schemes; "sqlite" and "file" (a local lake) are ours.
SCHEMES = {
    "postgres": "postgresql",
    "aurora-postgresql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "aurora": "mysql",
    "sqlite": "sqlite",
    "s3": "s3",
    "file": "file",
    "dynamodb": "dynamodb",
}
SETTINGS_KEYS = ("S3Settings", "PostgreSQLSettings", "MySQLSettings", "DynamoDbSettings")
ENV_PREFIX = "env:"  # a password "env:VARNAME": the value of that environment variable
SEALED = "fernet:"  # a stored password, encrypted


def new_id() -> str:
    """A stable random resource id, upper case as DMS's are."""
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(26))


def arn(region: str, kind: str, rid: str) -> str:
    return f"arn:aws:dms:{region}:{ACCOUNT}:{kind}:{rid}"


@dataclass
class Endpoint:
    """A DMS endpoint. ``password`` is stored and never returned (see :meth:`public`)."""

    identifier: str
    arn: str
    endpoint_type: str  # "source" | "target"
    engine_name: str
    server_name: str = ""
    port: int | None = None
    database_name: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    extra_connection_attributes: str = ""
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # S3Settings, ...
    created_at: float = 0.0


@dataclass
class Task:
    """A DMS replication task; ``identifier`` is also the opendms task's name."""

    identifier: str
    arn: str
    source_arn: str
    target_arn: str
    migration_type: str
    table_mappings: str
    task_settings: str = ""
    created_at: float = 0.0
    last_start: float | None = None
    last_stop: float | None = None
    schedule: str = ""  # a cron schedule the server starts the task on (not DMS's)
    schedule_type: str = ""  # reload-target (the default) or start-replication


class ResourceStore(Protocol):
    """Where the server keeps its endpoints and tasks."""

    def put_endpoint(self, endpoint: Endpoint) -> None: ...
    def endpoints(self) -> list[Endpoint]: ...
    def delete_endpoint(self, arn: str) -> None: ...
    def put_task(self, task: Task) -> None: ...
    def tasks(self) -> list[Task]: ...
    def delete_task(self, arn: str) -> None: ...


class SqliteResources:
    """A :class:`ResourceStore` in one SQLite file (JSON documents by ARN); ``key``: the
    Fernet key that encrypts passwords (None: kept as given, for tests of old files)."""

    def __init__(self, path: Path, key: bytes | None = None) -> None:
        self.path = path
        self._fernet = Fernet(key) if key is not None else None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS resource(arn TEXT PRIMARY KEY, kind TEXT, doc TEXT)"
        )

    def _put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(  # an update keeps the row (and its place in listings)
                "INSERT INTO resource VALUES (?, ?, ?) "
                "ON CONFLICT(arn) DO UPDATE SET kind = excluded.kind, doc = excluded.doc",
                (key, kind, json.dumps(doc)),
            )

    def _all(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT doc FROM resource WHERE kind = ? ORDER BY rowid", (kind,)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def _delete(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM resource WHERE arn = ?", (key,))

    def put_endpoint(self, endpoint: Endpoint) -> None:
        doc = asdict(endpoint)
        doc["password"] = self._seal(endpoint.password)
        self._put("endpoint", endpoint.arn, doc)

    def endpoints(self) -> list[Endpoint]:
        found = []
        for doc in self._all("endpoint"):
            stored = doc.get("password", "")
            doc["password"] = self._open(stored)
            endpoint = Endpoint(**doc)
            if stored and not stored.startswith(SEALED) and self._fernet is not None:
                self.put_endpoint(endpoint)  # a plain password from an older version
            found.append(endpoint)
        return found

    def _seal(self, password: str) -> str:
        if not password or self._fernet is None:
            return password
        return SEALED + self._fernet.encrypt(password.encode()).decode()

    def _open(self, stored: str) -> str:
        if not stored.startswith(SEALED):
            return stored
        if self._fernet is None:
            raise ConfigError(f"{self.path}: an encrypted password needs the server's key")
        try:
            return self._fernet.decrypt(stored[len(SEALED) :].encode()).decode()
        except InvalidToken:
            raise ConfigError(
                f"{self.path}: a password cannot be decrypted with the server's key "
                "(was secret.key replaced?)"
            ) from None

    def delete_endpoint(self, arn: str) -> None:
        self._delete(arn)

    def put_task(self, task: Task) -> None:
        self._put("task", task.arn, asdict(task))

    def tasks(self) -> list[Task]:
        return [Task(**d) for d in self._all("task")]

    def delete_task(self, arn: str) -> None:
        self._delete(arn)

    def close(self) -> None:
        self._db.close()


def resolve_password(endpoint: Endpoint) -> str:
    """The endpoint's password: ``env:VARNAME`` resolved from the environment."""
    if not endpoint.password.startswith(ENV_PREFIX):
        return endpoint.password
    name = endpoint.password[len(ENV_PREFIX) :]
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(
            f"endpoint {endpoint.identifier}: its password names the environment variable "
            f"{name!r}, which the server does not have"
        )
    return value


def endpoint_url(endpoint: Endpoint, *, resolve: bool = True) -> tuple[str, dict[str, Any]]:
    """The opendms URL and endpoint settings of a DMS endpoint (a pure function).

    Databases: ``<scheme>://user:password@server:port/database``; ``sqlite``: the
    database name is the file's path; ``s3``: ``S3Settings.BucketName`` and
    ``BucketFolder`` (``ServerName``, when given, is the S3 endpoint URL); ``file``: the
    database name is the lake's folder. Extra connection attributes and the engine's
    settings object become the endpoint settings (the engines parse them). ``resolve``:
    with the password (an ``env:`` one read from the environment); False, without (to
    check the record only)."""
    scheme = SCHEMES.get(endpoint.engine_name.lower())
    if scheme is None:
        known = ", ".join(sorted(SCHEMES))
        raise ConfigError(f"engine {endpoint.engine_name!r} is not supported (known: {known})")
    settings: dict[str, Any] = {}
    for block in endpoint.settings.values():
        settings.update(block)
    settings.update(parse_extra_connection_attributes(endpoint.extra_connection_attributes))
    password = resolve_password(endpoint) if resolve else ""
    return _url(scheme, endpoint, settings, password), settings


def _url(scheme: str, e: Endpoint, settings: dict[str, Any], password: str) -> str:
    if scheme in ("sqlite", "file") and not Path(e.database_name).is_absolute():
        raise ConfigError(
            f"a {scheme} endpoint's database name is the absolute path of its "
            f"{'database file' if scheme == 'sqlite' else 'folder'} "
            f"(got {e.database_name!r})"
        )
    if scheme == "sqlite":
        return f"sqlite:///{e.database_name}"
    if scheme == "file":
        return f"file://{e.database_name}"
    if scheme == "s3":
        return _s3_url(e, settings)
    if scheme == "dynamodb":
        return _dynamodb_url(e)
    auth = quote(e.username, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    port = f":{e.port}" if e.port else ""
    return f"{scheme}://{auth}@{e.server_name}{port}/{quote(e.database_name)}"


def _dynamodb_url(e: Endpoint) -> str:
    region = e.arn.split(":")[3] if e.arn.count(":") >= 3 else ""  # the server's region
    query = {"region": region} if region else {}
    if e.server_name:
        query["endpoint_url"] = e.server_name
    return "dynamodb://?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())


def _s3_url(e: Endpoint, settings: dict[str, Any]) -> str:
    bucket = settings.pop("BucketName", "")
    folder = settings.pop("BucketFolder", "")
    if not bucket:
        raise ConfigError("an s3 endpoint needs S3Settings.BucketName")
    url = f"s3://{bucket}/{folder}".rstrip("/")
    return f"{url}?endpoint_url={quote(e.server_name, safe='')}" if e.server_name else url
