"""The engines' endpoint-settings models: strict, case-insensitive, clear errors."""

from __future__ import annotations

import pydantic
import pytest

from opendms.endpoints import engines
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.lake.settings import LakeSettings
from opendms.endpoints.postgres.settings import PgSettings
from opendms.endpoints.sqlite.settings import SqliteSettings
from opendms.errors import ConfigError

PG = EndpointURL.parse("postgresql://me:s3cret@db/x?sslmode=require")


def test_every_engine_declares_a_settings_model() -> None:
    for engine in engines().values():
        assert engine.settings is not None, engine.name
        assert engine.settings.model_config.get("extra") == "forbid", engine.name


def test_names_are_case_insensitive_and_defaults_filled_in() -> None:
    got = PgSettings.resolve(PG, {"captureDDLs": " n ", "ROLE": "target"})
    assert (got.CaptureDdls, got.DdlArtifactsSchema, got.role) == (False, "public", "target")
    assert PgSettings.resolve(PG, {}).CaptureDdls is True


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"CaptureDdls": "perhaps"},
            "PostgreSQL endpoint setting CaptureDdls: expected true or false, got 'perhaps'",
        ),
        ({"SlotNmae": "x"}, "unknown PostgreSQL endpoint setting 'SlotNmae'; known: "),
        ({"role": ["a"]}, "PostgreSQL endpoint setting role: expected text"),
    ],
)
def test_errors_name_the_engine_and_the_setting(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PgSettings.resolve(PG, settings)
    assert message in str(caught.value)
    assert "s3cret" not in str(caught.value) and "pydantic" not in str(caught.value)


def test_an_unknown_url_parameter_names_it_without_the_password() -> None:
    url = EndpointURL.parse("postgresql://me:s3cret@db/x?sslmod=require&password=s3cret")
    with pytest.raises(ConfigError, match="unknown PostgreSQL URL parameter 'sslmod'") as caught:
        PgSettings.resolve(url, {})
    assert "s3cret" not in str(caught.value)


def test_the_model_itself_forbids_extra_fields() -> None:
    with pytest.raises(pydantic.ValidationError):
        SqliteSettings(Bogus="1")  # type: ignore[call-arg]


def test_lake_settings_take_the_url_query_and_skip_its_plumbing() -> None:
    url = EndpointURL.parse("s3://bucket/x?region=eu&dataFormat=parquet&endpoint_url=http://h")
    got = LakeSettings.resolve(url, {"maxFileSize": "2,048"})
    assert (got.DataFormat, got.MaxFileSize) == ("parquet", 2048)


def test_lake_settings_errors_name_the_lake() -> None:
    with pytest.raises(ConfigError, match="lake endpoint setting MaxFileSize: must be positive"):
        LakeSettings.parse({"MaxFileSize": "0"})
