"""DMS S3-target endpoint settings, accepted as keys or extra connection attributes.

Keys are matched case-insensitively (``maxFileSize`` and ``MaxFileSize`` are the
same), like DMS extra connection attributes. Unknown keys are rejected.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, model_validator

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.settings import EndpointSettings, Flag, Text
from opendms.errors import ConfigError

__all__ = ["NO_EFFECT", "URL_KEYS", "LakeSettings", "lake_settings", "nosup_value"]

log = logging.getLogger("opendms.endpoints")

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
_warned: set[str] = set()
# The DMS guide prints ECA numbers with thousands separators (``dataPageSize=2,048,000``).
_GROUPED = re.compile(r"[0-9]{1,3}(,[0-9]{3})+")
_ESCAPES = {"\\n": "\n", "\\r": "\r", "\\t": "\t"}


def _number(value: Any) -> Any:
    if isinstance(value, str) and _GROUPED.fullmatch(value.strip()):
        return value.replace(",", "")
    return value.strip() if isinstance(value, str) else value


def _csv_text(value: Any) -> Any:
    """A CSV delimiter or null value as DMS reads it from an extra connection attribute:
    ``''`` or ``""`` is the empty string, and ``\\n``, ``\\r``, ``\\t`` are a newline,
    carriage return and tab (``csvRowDelimiter=\\n;`` is a newline). JSON null stays
    None ("not given")."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    for escaped, char in _ESCAPES.items():
        text = text.replace(escaped, char)
    return text


def _choose(choices: tuple[str, ...], value: Any) -> Any:
    """The choice ``value`` spells: DMS spells one several ways, ``PARQUET_2_0`` (guide),
    ``parquet-2-0`` (API), ``public-read`` / ``PUBLIC_READ``."""
    if not isinstance(value, str):
        return value
    for choice in choices:
        if _spelling(choice) == _spelling(value.strip()):
            return choice
    raise ValueError(f"{value.strip()!r} is not one of {sorted(choices)}")


def _spelling(value: str) -> str:
    return value.lower().replace("_", "-")


def one_of(*choices: str) -> BeforeValidator:
    """A text setting that must be one of ``choices``, however DMS spells it."""
    return BeforeValidator(partial(_choose, choices))


Count = Annotated[int, BeforeValidator(_number), Field(gt=0)]
"""A positive whole number (``2,048,000`` as the DMS guide prints it)."""
CsvText = Annotated[str, BeforeValidator(_csv_text)]
"""CSV text, kept as given (a tab or a newline is a value)."""
_ACLS = (
    "NONE",
    "PRIVATE",
    "PUBLIC_READ",
    "PUBLIC_READ_WRITE",
    "AUTHENTICATED_READ",
    "AWS_EXEC_READ",
    "BUCKET_OWNER_READ",
    "BUCKET_OWNER_FULL_CONTROL",
)


class LakeSettings(EndpointSettings):
    """Typed S3/lake target settings with DMS defaults; the URL query adds to them."""

    engine = "lake"
    not_applied = frozenset(NO_EFFECT)

    DataFormat: Annotated[str, one_of("csv", "parquet")] = "csv"
    MaxFileSize: Count = 1048576  # KB, as in DMS
    CsvDelimiter: CsvText = ","
    CsvRowDelimiter: CsvText = "\n"
    CsvNullValue: CsvText = ""
    AddColumnName: Flag = False
    TimestampColumnName: Text = ""
    IncludeOpForFullLoad: Flag = False
    UseTaskStartTimeForFullLoadTimestamp: Flag = False
    CompressionType: Annotated[str, one_of("NONE", "GZIP")] = "NONE"
    ParquetCompression: Annotated[
        str, one_of("none", "snappy", "gzip", "zstd", "lz4", "brotli")
    ] = "snappy"
    RowGroupLength: Count = 10000
    BucketFolder: Text = ""
    BucketName: Text = ""
    EnableStatistics: Flag = True
    ParquetVersion: Annotated[
        str, one_of("parquet-1-0", "parquet-2-0", "parquet-2-4", "parquet-2-6")
    ] = "parquet-2-6"
    ParquetTimestampInMillisecond: Flag = False
    EncodingType: Annotated[str, one_of("rle-dictionary", "plain", "plain-dictionary")] = (
        "rle-dictionary"
    )
    DictPageSizeLimit: Count = 1048576  # bytes
    DataPageSize: Count = 1048576  # bytes
    Rfc4180: Flag = True
    CannedAclForObjects: Annotated[str, one_of(*_ACLS)] = "NONE"
    AddTrailingPaddingCharacter: Flag = False
    # SSE_S3 | SSE_KMS; empty: the bucket's default encryption
    EncryptionMode: Annotated[str, one_of("", "SSE_S3", "SSE_KMS")] = ""
    ServerSideEncryptionKmsKeyId: Text = ""
    # transaction-ordered CDC files (see opendms.endpoints.lake.txnfiles)
    PreserveTransactions: Flag = False
    CdcPath: Text = ""
    # CDC files (see opendms.endpoints.lake.apply)
    CdcMaxBatchInterval: Count = 60  # seconds
    CdcMinFileSize: Count = 32000  # KB
    CdcInsertsOnly: Flag = False
    CdcInsertsAndUpdates: Flag = False
    DatePartitionEnabled: Flag = False
    DatePartitionSequence: Annotated[
        str, one_of("YYYYMMDD", "YYYYMMDDHH", "YYYYMM", "MMYYYYDD", "DDMMYYYY")
    ] = "YYYYMMDD"
    DatePartitionDelimiter: Annotated[str, one_of("SLASH", "UNDERSCORE", "DASH", "NONE")] = "SLASH"
    DatePartitionTimezone: Text = ""  # Area/Location; empty = UTC
    # values the source did not send, in CSV CDC files (see nosup_value)
    UseCsvNoSupValue: Flag = False
    CsvNoSupValue: Annotated[str | None, BeforeValidator(_csv_text)] = None  # None: not given

    def __repr__(self) -> str:
        return f"LakeSettings(DataFormat={self.DataFormat!r}, MaxFileSize={self.MaxFileSize})"

    @classmethod
    def resolve(cls, url: EndpointURL, settings: Mapping[str, Any]) -> Self:
        """The lake's settings: the URL query's, then ``settings`` (which win)."""
        query = {k: v for k, v in url.query.items() if k.lower() not in URL_KEYS}
        return cls.parse({**query, **settings})

    @classmethod
    def ignored(cls, key: str) -> bool:
        """The URL plumbing (``endpoint_url``, ``region``, the AWS keys)."""
        return key in URL_KEYS

    @classmethod
    def warn_not_applied(cls, name: str) -> None:
        _warn_once(name, NO_EFFECT[name])

    @model_validator(mode="after")
    def _together(self) -> Self:
        """Settings that are only wrong together."""
        if len(self.CsvDelimiter) != 1:
            raise ConfigError("lake endpoint setting CsvDelimiter must be one character")
        _check_cdc(self)
        _check_no_sup(self)
        return self


def lake_settings(values: Mapping[str, Any]) -> LakeSettings:
    """Build settings from a dict of (case-insensitive) DMS keys."""
    return LakeSettings.parse(values)


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
            f"lake endpoint setting CsvNoSupValue {marker!r} cannot hold {found[0]!r}: it is "
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
            "lake endpoint settings CdcInsertsOnly and CdcInsertsAndUpdates cannot both be true"
        )
    zone = settings.DatePartitionTimezone
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ConfigError(
                f"lake endpoint setting DatePartitionTimezone: {zone!r} is not a time zone "
                "(expected Area/Location, like Asia/Seoul)"
            ) from None


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
        raise ConfigError("lake endpoint setting PreserveTransactions needs CdcPath (a folder)")
    if not path:
        return
    for name in ("DatePartitionEnabled", "AddColumnName"):
        if getattr(settings, name):
            raise ConfigError(f"lake endpoint settings CdcPath and {name} cannot be used together")
    if ".." in path.split("/"):
        raise ConfigError(
            f"lake endpoint setting CdcPath {settings.CdcPath!r} may not contain '..'"
        )
    if not settings.PreserveTransactions and "CdcPath" not in _warned:
        _warned.add("CdcPath")
        log.warning("lake endpoint setting CdcPath has an effect only with PreserveTransactions")
