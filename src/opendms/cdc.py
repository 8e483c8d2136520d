"""Change data capture vocabulary: positions, row changes and source transactions.

A source streams :class:`Transaction` objects in commit order; a target applies
a batch of them and records the batch's :class:`Position` in the same target
transaction, so a restart resumes exactly after the last applied change.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opendms.errors import ConfigError

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


@dataclass(frozen=True, order=True)
class LSN:
    """A PostgreSQL WAL position (``16/B374D848``)."""

    value: int

    @classmethod
    def parse(cls, text: str) -> LSN:
        m = _LSN.match(text.strip())
        if not m:
            raise ConfigError(f"{text!r} is not a PostgreSQL LSN (like 16/B374D848)")
        return cls((int(m.group(1), 16) << 32) | int(m.group(2), 16))

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"


class Op(enum.StrEnum):
    """DMS operation letters (the lake's ``Op`` column uses them)."""

    INSERT = "I"
    UPDATE = "U"
    DELETE = "D"
    TRUNCATE = "T"


UNCHANGED = object()
"""Marks a value the source did not send (an unchanged TOASTed column)."""


@dataclass(frozen=True)
class Change:
    """One row change. Values are the source's text forms (``None`` = NULL).

    ``key`` holds the old key (or old row) values for updates and deletes by
    the column names in ``key_columns``; ``values`` the new row for inserts and
    updates, where :data:`UNCHANGED` marks columns to leave as they are.
    """

    op: Op
    schema: str
    table: str
    columns: tuple[str, ...] = ()
    values: tuple[Any, ...] = ()
    key_columns: tuple[str, ...] = ()
    key: tuple[Any, ...] = ()


@dataclass
class Transaction:
    """A committed source transaction, in commit order."""

    xid: int
    commit_time: datetime
    end: LSN
    changes: list[Change] = field(default_factory=list)
