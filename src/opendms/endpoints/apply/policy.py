"""The DMS apply error policies, for every applier: what happens to a change the target
refuses (a duplicate key on insert, no row to update or delete), and how a skipped
change is reported (:class:`OnError`)."""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Protocol

from opendms.changes import Op
from opendms.errors import ConfigError

log = logging.getLogger("opendms.apply")


class ApplyErrorPolicy(enum.StrEnum):
    """DMS ``ApplyErrorInsertPolicy`` / ``ApplyErrorUpdatePolicy`` / ``ApplyErrorDeletePolicy``."""

    IGNORE_RECORD = "IGNORE_RECORD"
    LOG_ERROR = "LOG_ERROR"
    SUSPEND_TABLE = "SUSPEND_TABLE"
    STOP_TASK = "STOP_TASK"
    INSERT_RECORD = "INSERT_RECORD"


DEFAULT_POLICIES = {
    "insert": ApplyErrorPolicy.LOG_ERROR,
    "update": ApplyErrorPolicy.LOG_ERROR,
    "delete": ApplyErrorPolicy.IGNORE_RECORD,
}


class OnError(Protocol):
    """A change skipped by an apply error policy, reported once its batch committed:
    ``table`` (schema.table), ``op``, the row's ``key`` as text and the ``reason``."""

    def __call__(self, table: str, op: Op, key: str, reason: str) -> None: ...


def op_name(op: Op) -> str:
    """``insert``/``update``/``delete``: the word of DMS's policy names and of messages."""
    return op.name.lower()


def error_policies(given: Mapping[str, str] | None) -> dict[str, ApplyErrorPolicy]:
    """The policies per operation (``insert``/``update``/``delete``), defaults filled in."""
    out = dict(DEFAULT_POLICIES)
    for key, value in (given or {}).items():
        if key not in out:
            raise ConfigError(f"unknown apply error policy {key!r} (insert, update or delete)")
        try:
            policy = ApplyErrorPolicy(str(value).upper())
        except ValueError:
            names = ", ".join(p.value for p in ApplyErrorPolicy)
            raise ConfigError(
                f"apply error policy {key}: {value!r} is not one of {names}"
            ) from None
        if key == "delete" and policy is ApplyErrorPolicy.INSERT_RECORD:
            raise ConfigError("ApplyErrorDeletePolicy cannot be INSERT_RECORD")
        out[key] = policy
    return out


def log_error(table: str, op: Op, key: str, reason: str) -> None:
    """The default :class:`OnError`: a warning."""
    log.warning("table %s: %s of row %s skipped: %s", table, op_name(op), key, reason)
