"""DMS endpoint records -> opendms URLs and settings (a pure function)."""

from __future__ import annotations

import pytest

from opendms.errors import ConfigError
from opendms.server.resources import Endpoint, endpoint_url


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
