"""DMS S3-target endpoint settings, accepted as keys or extra connection attributes.

Keys are matched case-insensitively (``maxFileSize`` and ``MaxFileSize`` are the
same), like DMS extra connection attributes. Unknown keys are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opendms.errors import ConfigError

_BOOL = {"true": True, "false": False, "y": True, "n": False, "1": True, "0": False}


@dataclass(frozen=True)
class LakeSettings:
    """Typed S3/lake target settings with DMS defaults."""

    DataFormat: str = "csv"
    MaxFileSize: int = 1048576  # KB, as in DMS
    CsvDelimiter: str = ","
    CsvRowDelimiter: str = "\n"
    CsvNullValue: str = ""
    AddColumnName: bool = False
    TimestampColumnName: str = ""
    IncludeOpForFullLoad: bool = False
    UseTaskStartTimeForFullLoadTimestamp: bool = False
    CompressionType: str = "NONE"
    ParquetCompression: str = "snappy"
    RowGroupLength: int = 10000
    BucketFolder: str = ""
    BucketName: str = ""
    EnableStatistics: bool = True
    ParquetVersion: str = "parquet-2-6"
    # CDC files (see opendms.endpoints.lake.cdc)
    CdcMaxBatchInterval: int = 60  # seconds
    CdcMinFileSize: int = 32000  # KB
    CdcInsertsOnly: bool = False
    CdcInsertsAndUpdates: bool = False
    DatePartitionEnabled: bool = False
    DatePartitionSequence: str = "YYYYMMDD"
    DatePartitionDelimiter: str = "SLASH"
    DatePartitionTimezone: str = ""  # Area/Location; empty = UTC

    def __repr__(self) -> str:
        return f"LakeSettings(DataFormat={self.DataFormat!r}, MaxFileSize={self.MaxFileSize})"


_FIELDS = {name.lower(): name for name in LakeSettings.__dataclass_fields__}
_CHOICES = {
    "DataFormat": {"csv", "parquet"},
    "CompressionType": {"NONE", "GZIP"},
    "ParquetCompression": {"none", "snappy", "gzip", "zstd", "lz4", "brotli"},
    "ParquetVersion": {"parquet-1-0", "parquet-2-0", "parquet-2-4", "parquet-2-6"},
    "DatePartitionSequence": {"YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY"},
    "DatePartitionDelimiter": {"SLASH", "UNDERSCORE", "DASH", "NONE"},
}
# Settings that are endpoint-URL plumbing rather than DMS settings.
URL_KEYS = {"endpoint_url", "region", "aws_access_key_id", "aws_secret_access_key"}


def _coerce(name: str, value: Any) -> Any:
    kind = LakeSettings.__dataclass_fields__[name].type
    text = str(value).strip()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if text.lower() not in _BOOL:
            raise ConfigError(f"endpoint setting {name}: expected true or false, got {text!r}")
        return _BOOL[text.lower()]
    if kind == "int":
        try:
            number = int(text)
        except ValueError:
            raise ConfigError(f"endpoint setting {name}: expected a number, got {text!r}") from None
        if number <= 0:
            raise ConfigError(f"endpoint setting {name}: must be positive, got {number}")
        return number
    return _choice(name, value if name.startswith("Csv") else text)


def _choice(name: str, value: str) -> str:
    choices = _CHOICES.get(name)
    if choices is None:
        return value
    for choice in choices:
        if choice.lower() == value.lower():
            return choice
    raise ConfigError(f"endpoint setting {name}: {value!r} is not one of {sorted(choices)}")


def lake_settings(values: dict[str, Any]) -> LakeSettings:
    """Build settings from a dict of (case-insensitive) DMS keys."""
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key.lower() in URL_KEYS:
            continue
        name = _FIELDS.get(key.lower())
        if name is None:
            known = ", ".join(sorted(_FIELDS.values()))
            raise ConfigError(f"unknown lake endpoint setting {key!r}; known: {known}")
        kwargs[name] = _coerce(name, value)
    settings = LakeSettings(**kwargs)
    if len(settings.CsvDelimiter) != 1:
        raise ConfigError("endpoint setting CsvDelimiter must be one character")
    _check_cdc(settings)
    return settings


def _check_cdc(settings: LakeSettings) -> None:
    """Settings that are only wrong together (DMS refuses the same combinations)."""
    if settings.CdcInsertsOnly and settings.CdcInsertsAndUpdates:
        raise ConfigError(
            "endpoint settings CdcInsertsOnly and CdcInsertsAndUpdates cannot both be true"
        )
    zone = settings.DatePartitionTimezone
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(
                f"endpoint setting DatePartitionTimezone: {zone!r} is not a time zone "
                "(expected Area/Location, like Asia/Seoul)"
            ) from None
