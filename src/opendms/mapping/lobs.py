"""DMS's LOB task settings (``TargetMetadata``): which columns are LOBs, and what the
settings do to them.

A **LOB** is a column of unbounded text or binary: canonical ``STRING`` or ``BINARY``
without a length (PostgreSQL ``text``, ``varchar`` without a length, ``bytea``; MySQL
and MariaDB ``TEXT``, ``MEDIUMTEXT``, ``LONGTEXT``, ``BLOB``, ``MEDIUMBLOB``,
``LONGBLOB``; SQLite ``TEXT`` and ``BLOB``), ``JSON`` (PostgreSQL ``json``/``jsonb``,
MySQL ``JSON``) and PostgreSQL ``xml``. Not LOBs: ``TINYTEXT``/``TINYBLOB`` (at most 255
bytes), text and binary with a length, arrays, enums, UUIDs, and the other types
opendms carries by their native name (``inet``, ``citext``, a MySQL ``GEOMETRY``, ...).

The settings act only when the task-settings document sets them (opendms never cuts
values because of a default it was not asked for); then, as in DMS:

* ``SupportLobs`` false: LOB columns are not migrated (left out of the target table and
  of every row), except a LOB column of the primary key, which is kept;
* ``LimitedSizeLobMode`` true (set, or implied by setting ``LobMaxSize``) and
  ``FullLobMode`` not true: a LOB value longer than ``LobMaxSize`` kilobytes is cut to
  that many bytes (text at a character boundary, so it stays valid UTF-8) and
  ``DataTruncationErrorPolicy`` decides about the row. A JSON or XML document, or a key
  value, cannot be cut and stay what it was: one over the limit is a data error
  (``DataErrorPolicy``) instead;
* ``FullLobMode`` true, or nothing set: LOB values are copied whole.

A ``table-settings`` rule's ``lob-settings`` replace the task's LOB settings for the one
table it names (:func:`table_lob_policy`):

* ``mode`` ``limited`` (the default mode) with ``bulk-max-size`` N (kilobytes, non-zero):
  the table's LOBs are cut at N KB as above;
* ``mode`` ``unlimited``: the table's LOBs are copied whole (``bulk-max-size`` only chooses
  how DMS transfers them);
* ``mode`` ``none``: the task's settings apply to the table.

``limited`` and ``unlimited`` replace all of the task's LOB settings for the table,
``SupportLobs`` false included: the table's LOB columns are migrated (cut or whole).
The table's limit applies to its changes in CDC too, as the task's does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc

from opendms.errors import ConfigError, DataError
from opendms.model import ColumnType, Kind

if TYPE_CHECKING:
    from opendms.mapping.rules import LobSettings

__all__ = [
    "LobPolicy",
    "cut_value",
    "is_lob",
    "limited_value",
    "lob_policy",
    "over_limit",
    "table_lob_policy",
    "too_large",
    "truncatable",
    "truncate_lobs",
]

_SMALL = ("tinytext", "tinyblob")  # MySQL: at most 255 bytes, not LOBs in DMS
_LOB_NAMES = ("xml",)  # types carried by native name that are LOBs
TASK_SETTING = "TargetMetadata.LobMaxSize"
TABLE_SETTING = "lob-settings bulk-max-size"


@dataclass(frozen=True)
class LobPolicy:
    """What the LOB settings do to a table: ``drop`` LOB columns (SupportLobs false), or
    cut LOB values to ``max_bytes`` (limited LOB mode); neither = LOBs are copied whole.
    ``setting`` names the setting the limit comes from (the task's ``LobMaxSize`` or a
    table's ``bulk-max-size``), for messages."""

    drop: bool = False
    max_bytes: int | None = None
    max_kb: int = 0  # the limit in kilobytes as written, for messages
    setting: str = TASK_SETTING

    @property
    def acts(self) -> bool:
        return self.drop or self.max_bytes is not None


WHOLE = LobPolicy()


class LobSection(Protocol):
    """The LOB keys of a TargetMetadata section (``tasksettings.TargetMetadataSection``)
    and which of them the document set."""

    @property
    def model_fields_set(self) -> set[str]: ...

    @property
    def SupportLobs(self) -> bool: ...  # noqa: N802 - DMS's key names
    @property
    def FullLobMode(self) -> bool: ...  # noqa: N802
    @property
    def LimitedSizeLobMode(self) -> bool: ...  # noqa: N802
    @property
    def LobMaxSize(self) -> int: ...  # noqa: N802


def lob_policy(meta: LobSection, where: str = "task_settings") -> LobPolicy:
    """The LOB policy of a TargetMetadata section: only keys the document sets act."""
    given = meta.model_fields_set
    if "SupportLobs" in given and not meta.SupportLobs:
        return LobPolicy(drop=True)
    if meta.FullLobMode:
        return WHOLE
    limited = "LimitedSizeLobMode" in given or "LobMaxSize" in given
    if not (limited and meta.LimitedSizeLobMode):
        return WHOLE
    if meta.LobMaxSize < 1:
        raise ConfigError(
            "LobMaxSize must be at least 1 (kilobytes) in limited LOB mode",
            where=where,
            path="$.task_settings.TargetMetadata.LobMaxSize",
        )
    return LobPolicy(max_bytes=meta.LobMaxSize * 1024, max_kb=meta.LobMaxSize)


def table_lob_policy(settings: LobSettings | None, task: LobPolicy) -> LobPolicy:
    """The LOB policy of a table whose table-settings rule has ``settings`` (None: no
    lob-settings), under the task's policy ``task`` (see the module docstring). The
    parser has checked that limited mode has a non-zero ``bulk-max-size``."""
    if settings is None or settings.mode == "none":
        return task
    if settings.mode == "unlimited":
        return WHOLE
    size = settings.bulk_max_size
    assert size, "limited lob-settings without a bulk-max-size"
    return LobPolicy(max_bytes=size * 1024, max_kb=size, setting=TABLE_SETTING)


def is_lob(ctype: ColumnType) -> bool:
    """Whether a column of ``ctype`` is a LOB (see the module docstring)."""
    if ctype.kind is Kind.JSON:
        return True
    if ctype.kind not in (Kind.STRING, Kind.BINARY) or ctype.length is not None:
        return False
    if ctype.type_name is not None:
        return ctype.type_name in _LOB_NAMES
    return (ctype.native or "").lower() not in _SMALL


def truncatable(ctype: ColumnType) -> bool:
    """Whether a LOB of ``ctype`` can be cut and stay a value of its type (plain text and
    binary; not a JSON or XML document)."""
    return is_lob(ctype) and ctype.kind is not Kind.JSON and ctype.type_name is None


def over_limit(array: pa.Array[Any], limit: int) -> list[int]:
    """The rows of a text or binary ``array`` longer than ``limit`` bytes (UTF-8 bytes
    for text; NULLs never are)."""
    if not (
        pa.types.is_string(array.type)
        or pa.types.is_large_string(array.type)
        or pa.types.is_binary(array.type)
        or pa.types.is_large_binary(array.type)
    ):
        return []
    lengths = pc.binary_length(cast("pa.BinaryArray", array))
    longer = pc.greater(lengths, pa.scalar(limit))  # NULL for NULL: not chosen below
    return [i for i in pc.indices_nonzero(longer).to_pylist() if i is not None]


def cut_value(value: Any, limit: int) -> Any:
    """``value`` cut to at most ``limit`` bytes: bytes as they are, text as UTF-8 without
    splitting a character (so it may be up to 3 bytes shorter); other values unchanged."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return data[:limit] if len(data) > limit else value
    if not isinstance(value, str) or len(value) * 4 <= limit:
        return value
    data = value.encode("utf-8")
    if len(data) <= limit:
        return value
    end = limit
    while end > 0 and data[end] & 0xC0 == 0x80:  # data[end] continues a character
        end -= 1
    return data[:end].decode("utf-8")


def truncate_lobs(array: pa.Array[Any], limit: int) -> tuple[pa.Array[Any], list[int]]:
    """``array`` (text or binary) with every value longer than ``limit`` bytes cut (see
    :func:`cut_value`), and the rows that were cut. Unchanged arrays are returned as
    they are."""
    rows = over_limit(array, limit)
    if not rows:
        return array, []
    cut = pa.array([cut_value(array[i].as_py(), limit) for i in rows], array.type)
    chosen = set(rows)
    mask = pa.array([i in chosen for i in range(len(array))])
    return pc.replace_with_mask(array, mask, cut), rows


def too_large(column: str, size: int, limit: int, setting: str = TASK_SETTING) -> str:
    """The data error of a LOB over ``limit`` bytes (set by ``setting``) that cannot be
    cut."""
    return (
        f"column {column}: a value of {size} bytes is longer than "
        f"{setting} ({limit // 1024} KB) and cannot be truncated "
        "(a JSON or XML document, or a key)"
    )


def limited_value(
    value: Any, limit: int, cuttable: bool, column: str, table: str, setting: str = TASK_SETTING
) -> Any:
    """One value of a LOB column in limited LOB mode: cut to ``limit`` bytes when it is
    longer (the same object when it is not), or a DataError when it is longer and
    cannot be cut (``setting``: where the limit comes from, for the message)."""
    if cuttable:
        return cut_value(value, limit)
    if isinstance(value, (bytes, bytearray, memoryview)):
        size = len(bytes(value))
    elif isinstance(value, str) and len(value) * 4 > limit:
        size = len(value.encode("utf-8"))
    else:
        return value
    if size > limit:
        raise DataError(table, too_large(column, size, limit, setting), column=column)
    return value
