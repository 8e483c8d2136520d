"""CDC file names, date folders, Op rules and the CDC endpoint settings of the lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from opendms.changes import ApplyPlan, ColumnChange
from opendms.config import parse_extra_connection_attributes
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.lake.apply import (
    CDC_FILE,
    LakeApplier,
    allowed_ops,
    cdc_has_op,
    commit_text,
    date_folder,
    parse_stamp,
    stamp_text,
    stamp_time,
)
from opendms.endpoints.lake.checkpoint import Checkpoint, CheckpointStore, Pending
from opendms.endpoints.lake.engine import ENGINE as LAKE
from opendms.endpoints.lake.settings import lake_settings
from opendms.errors import ConfigError, TaskError
from opendms.model import Column, ColumnType, Kind, Table

WHEN = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_stamp_is_the_commit_millisecond_in_utc() -> None:
    settings = lake_settings({})
    stamp = stamp_time(WHEN, settings)
    assert stamp == datetime(2024, 1, 2, 3, 4, 5, 678000)
    assert stamp_text(stamp) == "20240102-030405678"
    assert parse_stamp("20240102-030405678") == stamp
    assert CDC_FILE.match("20240102-030405678.parquet") and CDC_FILE.match(
        "20240102-030405678.csv.gz"
    )
    assert not CDC_FILE.match("LOAD00000001.csv")
    naive = WHEN.replace(tzinfo=None)  # a naive commit time is UTC
    assert stamp_time(naive, settings) == stamp
    plus_two = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert stamp_time(plus_two, settings) == stamp


def test_partition_timezone_applies_only_with_date_partitions() -> None:
    seoul = {"DatePartitionTimezone": "Asia/Seoul"}
    assert stamp_text(stamp_time(WHEN, lake_settings(seoul))) == "20240102-030405678"
    enabled = lake_settings({**seoul, "DatePartitionEnabled": "true"})
    assert stamp_text(stamp_time(WHEN, enabled)) == "20240102-120405678"


@pytest.mark.parametrize(
    ("sequence", "delimiter", "folder"),
    [
        ("YYYYMMDD", "SLASH", "2024/01/02"),
        ("YYYYMMDDHH", "DASH", "2024-01-02-03"),
        ("YYYYMM", "NONE", "202401"),
        ("MMYYYYDD", "SLASH", "01/2024/02"),
        ("DDMMYYYY", "UNDERSCORE", "02_01_2024"),
    ],
)
def test_date_folders(sequence: str, delimiter: str, folder: str) -> None:
    settings = lake_settings(
        {
            "datePartitionEnabled": "y",
            "datepartitionsequence": sequence.lower(),
            "DatePartitionDelimiter": delimiter,
        }
    )
    assert date_folder(stamp_time(WHEN, settings), settings) == folder
    assert date_folder(WHEN, lake_settings({})) == ""


def test_commit_text_is_utc_microseconds() -> None:
    assert (
        commit_text(WHEN.astimezone(timezone(timedelta(hours=-5)))) == "2024-01-02 03:04:05.678901"
    )


@pytest.mark.parametrize(
    ("settings", "op", "ops"),
    [
        ({}, True, "IUD"),
        ({"IncludeOpForFullLoad": "true"}, True, "IUD"),
        ({"CdcInsertsOnly": "true"}, False, "I"),
        ({"CdcInsertsOnly": "true", "IncludeOpForFullLoad": "true"}, True, "I"),
        ({"CdcInsertsAndUpdates": "true"}, False, "IU"),
        ({"CdcInsertsAndUpdates": "true", "IncludeOpForFullLoad": "true"}, True, "IU"),
    ],
)
def test_op_column_rules(settings: dict[str, str], op: bool, ops: str) -> None:
    parsed = lake_settings(settings)
    assert cdc_has_op(parsed) is op
    assert allowed_ops(parsed) == frozenset(ops)


def test_the_data_lake_lab_settings(tmp_path: Path) -> None:
    """The extra connection attributes of the data-lake exercise (shared seeds, 002)."""
    text = (
        "DataFormat=parquet;maxFileSize=131072;timestampColumnName=extracted_at;"
        "includeOpForFullLoad=true;cdcMaxBatchinterval=120"
    )
    attributes = parse_extra_connection_attributes(text)
    parsed = lake_settings(attributes)
    assert parsed.CdcMaxBatchInterval == 120 and parsed.TimestampColumnName == "extracted_at"
    assert cdc_has_op(parsed) and parsed.DataFormat == "parquet"
    target = LAKE.lake_target(EndpointURL.parse(f"file://{tmp_path}/lake"), attributes)
    assert LakeApplier(target, "lab", []).batch_hint() == (120.0, 32000 * 1024)


def test_cdc_settings_are_case_insensitive_with_dms_defaults() -> None:
    parsed = lake_settings({"cdcMaxBatchinterval": "120", "CDCMINFILESIZE": 64})
    assert (parsed.CdcMaxBatchInterval, parsed.CdcMinFileSize) == (120, 64)
    default = lake_settings({})
    assert (default.CdcMaxBatchInterval, default.CdcMinFileSize) == (60, 32000)
    assert (default.DatePartitionSequence, default.DatePartitionDelimiter) == ("YYYYMMDD", "SLASH")
    assert not default.DatePartitionEnabled and default.DatePartitionTimezone == ""


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"CdcInsertsOnly": "true", "CdcInsertsAndUpdates": "y"}, "cannot both be true"),
        ({"DatePartitionSequence": "YYYY"}, "DatePartitionSequence"),
        ({"DatePartitionDelimiter": "COMMA"}, "DatePartitionDelimiter"),
        ({"DatePartitionTimezone": "Mars/Olympus"}, "not a time zone"),
        ({"DatePartitionTimezone": "../etc"}, "not a time zone"),
        ({"CdcMaxBatchInterval": "0"}, "must be positive"),
        ({"CdcMinFileSize": "big"}, "expected a number"),
        ({"CdcInsertsOnly": "maybe"}, "expected true or false"),
    ],
)
def test_cdc_settings_are_validated(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        lake_settings(settings)


def test_checkpoint_round_trip_and_damaged_object(tmp_path: Path) -> None:
    checkpoint = Checkpoint(
        "0/10", "20240102-030405678", Pending("0/20", "20240102-030405679", ("a",))
    )
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    target = LAKE.lake_target(EndpointURL.parse(f"file://{tmp_path}/lake"), {})
    store = CheckpointStore(target, "task")
    store.save(checkpoint)
    assert store.load() == checkpoint
    assert not list((tmp_path / "lake" / "_opendms" / "checkpoints").glob("*.tmp"))
    (tmp_path / "lake" / "_opendms" / "checkpoints" / "task.json").write_text("[1, 2")
    with pytest.raises(TaskError, match=r"task\.json .* is damaged"):
        LakeApplier(target, "task", [])


def test_column_changes_apply_once() -> None:
    source = Table(
        "s",
        "t",
        (Column("id", ColumnType(Kind.INT32)), Column("a", ColumnType(Kind.STRING))),
        primary_key=("id",),
    )
    shape = ApplyPlan(source, source, {"id": "id", "a": "a"})
    changes = [
        ColumnChange("add", "b", ColumnType(Kind.INT64)),
        ColumnChange("rename", "id", new_name="key"),
        ColumnChange("alter_type", "a", ColumnType(Kind.JSON)),
        ColumnChange("drop", "b"),
    ]
    for cc in changes:
        shape = shape.after(cc)
    again = shape
    for cc in changes:
        again = again.after(cc)
    assert again == shape
    assert [(c.name, c.type.kind) for c in shape.target.columns] == [
        ("key", Kind.INT32),
        ("a", Kind.JSON),
    ]
    assert shape.names == {"key": "key", "a": "a"} and shape.source.primary_key == ("key",)
