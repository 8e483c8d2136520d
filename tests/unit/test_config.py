"""Task files: every malformed input names the file and the JSON path."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from opendms.config import load_task_file, parse_extra_connection_attributes
from opendms.endpoints.base import EndpointURL, PrepMode, mask
from opendms.endpoints.lake.settings import lake_settings
from opendms.errors import ConfigError

GOOD = """
name: t1
source: sqlite:///src.db
target:
  url: file:///tmp/lake
  settings: "DataFormat=parquet;maxFileSize=131072"
task_settings:
  FullLoadSettings: {TargetTablePrepMode: TRUNCATE_BEFORE_LOAD, MaxFullLoadSubTasks: 4}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(text)
    return path


def test_good_file(tmp_path: Path) -> None:
    spec = load_task_file(_write(tmp_path, GOOD))
    assert spec.name == "t1"
    assert spec.target.settings == {"DataFormat": "parquet", "maxFileSize": "131072"}
    assert spec.task_settings.FullLoadSettings.TargetTablePrepMode is PrepMode.TRUNCATE_BEFORE_LOAD
    assert spec.task_settings.FullLoadSettings.MaxFullLoadSubTasks == 4
    assert spec.task_settings.FullLoadSettings.CommitRate == 10000


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        (GOOD + "surprise: 1\n", "$.surprise", "unknown key"),
        (
            GOOD.replace("MaxFullLoadSubTasks: 4", "MaxFullLoadSubTasks: 0"),
            "$.task_settings.FullLoadSettings.MaxFullLoadSubTasks",
            "greater than or equal to 1",
        ),
        (
            GOOD.replace("TRUNCATE_BEFORE_LOAD", "TRUNCATE"),
            "$.task_settings.FullLoadSettings.TargetTablePrepMode",
            "DROP_AND_CREATE",
        ),
        (
            GOOD.replace("FullLoadSettings:", "FullLoadSetings:"),
            "$.task_settings.FullLoadSetings",
            "unknown key",
        ),
        (GOOD.replace("name: t1", "name: 1 bad name"), "$.name", "pattern"),
        (GOOD.replace("source: sqlite:///src.db\n", ""), "$.source", "required"),
        (GOOD + "migration_type: sometimes\n", "$.migration_type", "full-load"),
        (GOOD + "task_settings2: {}\n", "$.task_settings2", "unknown key"),
    ],
)
def test_bad_file(tmp_path: Path, text: str, path: str, message: str) -> None:
    file = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_task_file(file)
    assert str(file) in str(info.value)
    assert path in str(info.value)
    assert message in str(info.value)


def test_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_task_file(_write(tmp_path, "name: [unclosed\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read task file"):
        load_task_file(tmp_path / "nope.yaml")


def test_mappings_file_reference(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"rules": []}')
    spec = load_task_file(_write(tmp_path, GOOD + "table_mappings: m.json\n"))
    assert spec.table_mappings == {"rules": []}


def test_mappings_file_bad_json(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"rules": [}')
    with pytest.raises(ConfigError, match=r"\$.table_mappings.*line 1, column 12"):
        load_task_file(_write(tmp_path, GOOD + "table_mappings: m.json\n"))


RULE = (
    '{"rule-type": "selection", "rule-id": "1", "rule-name": "1", '
    '"object-locator": {"schema-name": "%", "table-name": "%"}, "rule-action": "include"}'
)


@pytest.mark.parametrize("inline", [True, False])
def test_a_key_twice_in_a_mapping_is_the_same_error_inline_and_in_a_file(
    tmp_path: Path, inline: bool
) -> None:
    doc = '{"rules": [' + RULE.replace('"rule-id": "1"', '"rule-id": "1", "rule-id": "2"') + "]}"
    (tmp_path / "m.json").write_text(doc)
    value = repr(doc) if inline else "m.json"
    with pytest.raises(ConfigError, match=r"\$\.rules\[0\]\.rule-id: key given more than once"):
        load_task_file(_write(tmp_path, GOOD + f"table_mappings: {value}\n"))


def test_a_bare_rule_says_how_to_wrap_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"wrap it so") as info:
        load_task_file(_write(tmp_path, GOOD + f"table_mappings: {RULE!r}\n"))
    assert '{"rules": [...]}' in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "DataFormat=parquet;maxFileSize=131072",
            {"DataFormat": "parquet", "maxFileSize": "131072"},
        ),
        (" a = 1 ; ;b=x=y ", {"a": "1", "b": "x=y"}),
        ("", {}),
    ],
)
def test_extra_connection_attributes(text: str, expected: dict[str, str]) -> None:
    assert parse_extra_connection_attributes(text) == expected


def test_extra_connection_attribute_without_value() -> None:
    with pytest.raises(ConfigError, match="'oops' is not key=value"):
        parse_extra_connection_attributes("a=1;oops")


def test_lake_settings_are_case_insensitive() -> None:
    s = lake_settings({"dataformat": "PARQUET", "MAXFILESIZE": "64", "includeOpForFullLoad": "y"})
    assert (s.DataFormat, s.MaxFileSize, s.IncludeOpForFullLoad) == ("parquet", 64, True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"MaxFileSize": "big"}, "expected a number"),
        ({"MaxFileSize": "0"}, "must be positive"),
        ({"AddColumnName": "maybe"}, "expected true or false"),
        ({"CsvDelimiter": "||"}, "one character"),
        ({"Bogus": "1"}, "unknown lake endpoint setting 'Bogus'"),
    ],
)
def test_lake_settings_errors(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        lake_settings(settings)


@pytest.mark.parametrize(
    ("given", "use", "value"),
    [
        (
            parse_extra_connection_attributes("useCsvNoSupValue=true;csvNoSupValue=NOSUP;"),
            True,
            "NOSUP",
        ),
        (parse_extra_connection_attributes("useCsvNoSupValue=y;csvNoSupValue='';"), True, ""),
        ({"UseCsvNoSupValue": True, "CsvNoSupValue": "?"}, True, "?"),
        ({"UseCsvNoSupValue": False, "CsvNoSupValue": None}, False, None),
        ({}, False, None),
    ],
)
def test_lake_csv_no_sup_value_settings(
    given: dict[str, Any], use: bool, value: str | None
) -> None:
    """ECA and JSON spellings; ``''`` is the empty string, not "not given"."""
    settings = lake_settings(given)
    assert (settings.UseCsvNoSupValue, settings.CsvNoSupValue) == (use, value)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"UseCsvNoSupValue": "true"},
            "UseCsvNoSupValue has no effect in opendms: without CsvNoSupValue",
        ),
        ({"CsvNoSupValue": "x"}, "CsvNoSupValue has no effect in opendms: it is written only with"),
        ({"UseCsvNoSupValue": "true", "CsvNoSupValue": ""}, "CsvNoSupValue equals CsvNullValue"),
    ],
)
def test_lake_csv_no_sup_value_warnings(
    given: dict[str, str],
    message: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opendms.endpoints.lake import settings as module

    monkeypatch.setattr(module, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="opendms.endpoints"):
        lake_settings(given)
        lake_settings(given)
    assert [r.getMessage() for r in caplog.records if message in r.getMessage()] != []
    assert len(caplog.records) == 1


@pytest.mark.parametrize("marker", ["a,b", 'say "x"', "two\nlines", "a|b"])
def test_lake_csv_no_sup_value_that_cannot_be_written_unquoted(marker: str) -> None:
    settings = {"UseCsvNoSupValue": "true", "CsvNoSupValue": marker}
    delimiter = "|" if "|" in marker else ","
    with pytest.raises(ConfigError, match=r"CsvNoSupValue .* cannot hold"):
        lake_settings({**settings, "CsvDelimiter": delimiter})


def test_password_never_printed() -> None:
    url = EndpointURL.parse("postgresql://me:s3cret@db:5432/x")
    assert "s3cret" not in str(url) and "s3cret" not in repr(url)
    assert mask("mysql://me:s3cret@h/x") == "mysql://me:***@h/x"
    assert str(url.password) == "s3cret"
