"""DMS S3-target endpoint settings, accepted as keys or extra connection attributes.

Keys are matched case-insensitively (``maxFileSize`` and ``MaxFileSize`` are the
same), like DMS extra connection attributes. Unknown keys are rejected.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opendms.errors import ConfigError

log = logging.getLogger("opendms.endpoints")
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
    ParquetTimestampInMillisecond: bool = False
    EncodingType: str = "rle-dictionary"
    DictPageSizeLimit: int = 1048576  # bytes
    DataPageSize: int = 1048576  # bytes
    Rfc4180: bool = True
    CannedAclForObjects: str = "NONE"
    AddTrailingPaddingCharacter: bool = False
    EncryptionMode: str = ""  # SSE_S3 | SSE_KMS; empty: the bucket's default encryption
    ServerSideEncryptionKmsKeyId: str = ""
    # transaction-ordered CDC files (see opendms.endpoints.lake.txnfiles)
    PreserveTransactions: bool = False
    CdcPath: str = ""
    # CDC files (see opendms.endpoints.lake.cdc)
    CdcMaxBatchInterval: int = 60  # seconds
    CdcMinFileSize: int = 32000  # KB
    CdcInsertsOnly: bool = False
    CdcInsertsAndUpdates: bool = False
    DatePartitionEnabled: bool = False
    DatePartitionSequence: str = "YYYYMMDD"
    DatePartitionDelimiter: str = "SLASH"
    DatePartitionTimezone: str = ""  # Area/Location; empty = UTC
    # values the source did not send, in CSV CDC files (see nosup_value)
    UseCsvNoSupValue: bool = False
    CsvNoSupValue: str | None = None  # None: not given (the null value is written)

    def __repr__(self) -> str:
        return f"LakeSettings(DataFormat={self.DataFormat!r}, MaxFileSize={self.MaxFileSize})"


_FIELDS = {name.lower(): name for name in LakeSettings.__dataclass_fields__}
_CHOICES = {
    "DataFormat": {"csv", "parquet"},
    "CompressionType": {"NONE", "GZIP"},
    "ParquetCompression": {"none", "snappy", "gzip", "zstd", "lz4", "brotli"},
    "ParquetVersion": {"parquet-1-0", "parquet-2-0", "parquet-2-4", "parquet-2-6"},
    "EncodingType": {"rle-dictionary", "plain", "plain-dictionary"},
    "EncryptionMode": {"SSE_S3", "SSE_KMS"},
    "CannedAclForObjects": {
        "NONE",
        "PRIVATE",
        "PUBLIC_READ",
        "PUBLIC_READ_WRITE",
        "AUTHENTICATED_READ",
        "AWS_EXEC_READ",
        "BUCKET_OWNER_READ",
        "BUCKET_OWNER_FULL_CONTROL",
    },
    "DatePartitionSequence": {"YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY"},
    "DatePartitionDelimiter": {"SLASH", "UNDERSCORE", "DASH", "NONE"},
}
# Settings that are endpoint-URL plumbing rather than DMS settings.
URL_KEYS = {"endpoint_url", "region", "aws_access_key_id", "aws_secret_access_key"}
# DMS S3 settings accepted with one warning each, and why they do nothing here.
NO_EFFECT = {
    "ServiceAccessRoleArn": "opendms uses the credentials of its environment, not an IAM role",
    "ExpectedBucketOwner": "the bucket is the URL's; its owner is not checked",
    "GlueCatalogGeneration": "no AWS Glue Data Catalog is written",
    "IgnoreHeaderRows": "a setting of S3 sources; opendms reads no S3 source",
    "ExternalTableDefinition": "a setting of S3 sources; opendms reads no S3 source",
}
_NO_EFFECT = {name.lower(): name for name in NO_EFFECT}
_warned: set[str] = set()
# The DMS guide prints ECA numbers with thousands separators (``dataPageSize=2,048,000``).
_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+")
_ESCAPES = {"\\n": "\n", "\\r": "\r", "\\t": "\t"}


def _coerce(name: str, value: Any) -> Any:
    kind = LakeSettings.__dataclass_fields__[name].type
    if value is None and kind == "str | None":  # JSON null: not given
        return None
    text = str(value).strip()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if text.lower() not in _BOOL:
            raise ConfigError(f"endpoint setting {name}: expected true or false, got {text!r}")
        return _BOOL[text.lower()]
    if kind == "int":
        if _GROUPED.fullmatch(text):
            text = text.replace(",", "")
        try:
            number = int(text)
        except ValueError:
            raise ConfigError(f"endpoint setting {name}: expected a number, got {text!r}") from None
        if number <= 0:
            raise ConfigError(f"endpoint setting {name}: must be positive, got {number}")
        return number
    if name.startswith("Csv"):
        return _csv_text(str(value))
    return _choice(name, text)


def _csv_text(value: str) -> str:
    """A CSV delimiter or null value as DMS reads it from an extra connection attribute:
    ``''`` or ``""`` is the empty string, and ``\\n``, ``\\r``, ``\\t`` are a newline,
    carriage return and tab (``csvRowDelimiter=\\n;`` is a newline)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    for escaped, char in _ESCAPES.items():
        value = value.replace(escaped, char)
    return value


def _choice(name: str, value: str) -> str:
    choices = _CHOICES.get(name)
    if choices is None:
        return value
    for choice in choices:
        if _spelling(choice) == _spelling(value):
            return choice
    raise ConfigError(f"endpoint setting {name}: {value!r} is not one of {sorted(choices)}")


def _spelling(value: str) -> str:
    """DMS spells one choice several ways: ``PARQUET_2_0`` (guide), ``parquet-2-0`` (API),
    ``public-read`` / ``PUBLIC_READ``."""
    return value.lower().replace("_", "-")


def lake_settings(values: dict[str, Any]) -> LakeSettings:
    """Build settings from a dict of (case-insensitive) DMS keys."""
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key.lower() in URL_KEYS:
            continue
        name = _FIELDS.get(key.lower())
        if name is None and key.lower() in _NO_EFFECT:
            _warn_no_effect(_NO_EFFECT[key.lower()])
            continue
        if name is None:
            known = ", ".join(sorted([*_FIELDS.values(), *NO_EFFECT]))
            raise ConfigError(f"unknown lake endpoint setting {key!r}; known: {known}")
        kwargs[name] = _coerce(name, value)
    settings = LakeSettings(**kwargs)
    if len(settings.CsvDelimiter) != 1:
        raise ConfigError("endpoint setting CsvDelimiter must be one character")
    _check_cdc(settings)
    _check_no_sup(settings)
    return settings


def nosup_value(settings: LakeSettings) -> str | None:
    """The text CSV CDC files hold for a value the source did not send (``UseCsvNoSupValue``
    with ``CsvNoSupValue``), or None: such values are written as the null value."""
    return settings.CsvNoSupValue if settings.UseCsvNoSupValue else None


def _check_no_sup(settings: LakeSettings) -> None:
    """``CsvNoSupValue`` is written as it is, unquoted, in CSV CDC files only (DMS: "only
    applies if your output files during a CDC load are written in .csv format")."""
    marker = settings.CsvNoSupValue
    if marker is None:
        if settings.UseCsvNoSupValue:
            _warn_once(
                "UseCsvNoSupValue",
                "without CsvNoSupValue, values the source did not send are the null value",
            )
        return
    breaking = {settings.CsvDelimiter, '"', "\n", "\r", *settings.CsvRowDelimiter}
    found = sorted(c for c in breaking if c in marker)
    if found:
        raise ConfigError(
            f"endpoint setting CsvNoSupValue {marker!r} cannot hold {found[0]!r}: it is "
            "written unquoted, so it may not hold the delimiter, the row delimiter, a "
            "quotation mark or a line break"
        )
    if not settings.UseCsvNoSupValue:
        _warn_once("CsvNoSupValue", "it is written only with UseCsvNoSupValue=true")
    elif settings.DataFormat == "parquet" and not settings.PreserveTransactions:
        _warn_once(  # (transaction files are CSV whatever DataFormat says)
            "CsvNoSupValue",
            "it applies to CSV CDC files; Parquet files hold NULL for values the source "
            "did not send",
        )
    elif marker == settings.CsvNullValue and "CsvNoSupValue=CsvNullValue" not in _warned:
        _warned.add("CsvNoSupValue=CsvNullValue")
        log.warning(
            "lake endpoint setting CsvNoSupValue equals CsvNullValue: readers cannot tell a "
            "value the source did not send from NULL"
        )


def _check_cdc(settings: LakeSettings) -> None:
    """Settings that are only wrong together (DMS refuses the same combinations)."""
    _check_transactions(settings)
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


def _warn_no_effect(name: str) -> None:
    _warn_once(name, NO_EFFECT[name])


def _warn_once(name: str, why: str) -> None:
    if name not in _warned:
        _warned.add(name)
        log.warning("lake endpoint setting %s has no effect in opendms: %s", name, why)


def _check_transactions(settings: LakeSettings) -> None:
    """``PreserveTransactions`` needs ``CdcPath``, which DMS refuses with date folders
    and header rows; CdcPath alone does nothing on a target (DMS reads it for S3
    sources)."""
    path = settings.CdcPath.strip("/")
    if settings.PreserveTransactions and not path:
        raise ConfigError("endpoint setting PreserveTransactions needs CdcPath (a folder)")
    if not path:
        return
    for name in ("DatePartitionEnabled", "AddColumnName"):
        if getattr(settings, name):
            raise ConfigError(f"endpoint settings CdcPath and {name} cannot be used together")
    if ".." in path.split("/"):
        raise ConfigError(f"endpoint setting CdcPath {settings.CdcPath!r} may not contain '..'")
    if not settings.PreserveTransactions and "CdcPath" not in _warned:
        _warned.add("CdcPath")
        log.warning("lake endpoint setting CdcPath has an effect only with PreserveTransactions")
