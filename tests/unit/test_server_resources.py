"""DMS endpoint records -> opendms URLs and settings (a pure function); passwords
encrypted at rest, ``env:`` passwords read from the environment."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from opendms.errors import ConfigError
from opendms.server.auth import load_or_create_key
from opendms.server.resources import Endpoint, SqliteResources, endpoint_url


def _endpoint(engine: str, **kw: object) -> Endpoint:
    return Endpoint("e", "arn:aws:dms:us-east-1:0:endpoint:E", "source", engine, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("engine", "fields", "url"),
    [
        (
            "postgres",
            {
                "server_name": "db",
                "port": 5432,
                "database_name": "shop",
                "username": "u",
                "password": "p@ss",
            },
            "postgresql://u:p%40ss@db:5432/shop",
        ),
        ("mariadb", {"server_name": "h", "database_name": "d", "username": "u"}, "mysql://u@h/d"),
        (
            "aurora",
            {"server_name": "h", "port": 3306, "database_name": "d", "username": "u"},
            "mysql://u@h:3306/d",
        ),
        ("sqlite", {"database_name": "/tmp/a.db"}, "sqlite:////tmp/a.db"),
        ("file", {"database_name": "/data/lake"}, "file:///data/lake"),
    ],
)
def test_urls(engine: str, fields: dict[str, object], url: str) -> None:
    assert endpoint_url(_endpoint(engine, **fields))[0] == url


def test_s3_settings_and_extra_connection_attributes() -> None:
    e = _endpoint(
        "s3",
        server_name="http://127.0.0.1:9000",
        settings={"S3Settings": {"BucketName": "b", "BucketFolder": "f", "DataFormat": "csv"}},
        extra_connection_attributes="CdcMaxBatchInterval=5;",
    )
    url, settings = endpoint_url(e)
    assert url == "s3://b/f?endpoint_url=http%3A%2F%2F127.0.0.1%3A9000"
    assert settings == {"DataFormat": "csv", "CdcMaxBatchInterval": "5"}


def test_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"known: .*postgres"):
        endpoint_url(_endpoint("oracle"))


def test_password_not_in_repr() -> None:
    assert "secret" not in repr(_endpoint("postgres", password="secret"))


def test_relative_sqlite_and_file_paths_are_refused() -> None:
    for engine in ("sqlite", "file"):
        with pytest.raises(ConfigError, match="absolute path"):
            endpoint_url(_endpoint(engine, database_name="relative/db"))


def test_env_password_is_read_when_the_url_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    e = _endpoint("postgres", server_name="h", username="u", password="env:OPENDMS_T_PW")
    monkeypatch.delenv("OPENDMS_T_PW", raising=False)
    assert endpoint_url(e, resolve=False)[0] == "postgresql://u@h/"
    with pytest.raises(ConfigError, match="OPENDMS_T_PW"):
        endpoint_url(e)
    monkeypatch.setenv("OPENDMS_T_PW", "from env")
    assert endpoint_url(e)[0] == "postgresql://u:from%20env@h/"


def _raw_docs(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as conn:
        return [json.loads(r[0]) for r in conn.execute("SELECT doc FROM resource")]


def test_passwords_are_encrypted_at_rest(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    store = SqliteResources(tmp_path / "server.db", key)
    store.put_endpoint(_endpoint("postgres", password="plain-secret"))
    raw = (tmp_path / "server.db").read_bytes()
    assert b"plain-secret" not in raw
    assert _raw_docs(tmp_path / "server.db")[0]["password"].startswith("fernet:")
    assert [e.password for e in store.endpoints()] == ["plain-secret"]
    store.close()
    other = SqliteResources(tmp_path / "server.db", Fernet.generate_key())
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        other.endpoints()
    other.close()


def test_plain_passwords_of_an_older_file_are_encrypted_when_read(tmp_path: Path) -> None:
    old = SqliteResources(tmp_path / "server.db")  # no key: as an older version wrote
    old.put_endpoint(_endpoint("postgres", password="old-plain"))
    old.close()
    assert _raw_docs(tmp_path / "server.db")[0]["password"] == "old-plain"
    store = SqliteResources(tmp_path / "server.db", load_or_create_key(tmp_path))
    assert [e.password for e in store.endpoints()] == ["old-plain"]
    doc = _raw_docs(tmp_path / "server.db")[0]
    assert doc["password"].startswith("fernet:") and "old-plain" not in json.dumps(doc)
    assert [e.password for e in store.endpoints()] == ["old-plain"]
    store.close()
