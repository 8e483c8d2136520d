"""The ``handlers`` of a task file: Python functions that receive its change records.

Each entry names a function (``package.module:function``) and how it is fed, with the
names of an AWS Lambda event-source mapping where one exists. Every key is accepted in
snake_case or by its Lambda name (``batch_size`` or ``BatchSize``); an unknown key is an
error naming its JSON path (``$.handlers[0].bach_size``). See docs/handlers.md.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, field_validator

FUNCTION = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class HandlerSpec(BaseModel):
    """One handler function and its event-source-mapping settings."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    function: str = Field(alias="FunctionName")
    name: str | None = Field(None, alias="Name")
    tables: tuple[str, ...] = Field((), alias="Tables")
    batch_size: int = Field(100, ge=1, le=10_000, alias="BatchSize")
    max_batching_window_s: float = Field(
        0.0, ge=0.0, le=300.0, alias="MaximumBatchingWindowInSeconds"
    )
    max_retry_attempts: int = Field(3, ge=-1, le=10_000, alias="MaximumRetryAttempts")
    max_record_age_s: int = Field(-1, ge=-1, le=604_800, alias="MaximumRecordAgeInSeconds")
    bisect_batch_on_function_error: bool = Field(False, alias="BisectBatchOnFunctionError")
    timeout_s: float = Field(60.0, gt=0.0, le=900.0, alias="Timeout")

    @field_validator("function")
    @classmethod
    def _function(cls, value: str) -> str:
        if not FUNCTION.match(value):
            raise ValueError(
                f"{value!r} is not a function path: write package.module:function "
                "(e.g. myapp.handlers:on_changes)"
            )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not NAME.match(value):
            raise ValueError(
                f"{value!r} is not a handler name (letters, digits, _ . : -; at most 128)"
            )
        return value

    @field_validator("max_record_age_s")
    @classmethod
    def _age(cls, value: int) -> int:
        if value == 0:
            raise ValueError("0 is not an age: -1 (no limit) or a number of seconds")
        return value

    @field_validator("tables")
    @classmethod
    def _tables(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name or name.count(".") > 1:
                raise ValueError(f"{name!r} is not a table: write table or schema.table")
        return value

    @property
    def label(self) -> str:
        """The handler's name: ``name``, else its function path."""
        return self.name or self.function

    def takes(self, schema: str, table: str) -> bool:
        """Whether records of ``schema.table`` go to this handler (``tables`` empty:
        every table; ``%`` matches any text, as in DMS table mappings)."""
        if not self.tables:
            return True
        return any(_matches(pattern, schema, table) for pattern in self.tables)


def _matches(pattern: str, schema: str, table: str) -> bool:
    glob = pattern.replace("%", "*")
    if "." in glob:
        want_schema, _, want_table = glob.partition(".")
        return fnmatchcase(schema, want_schema) and fnmatchcase(table, want_table)
    return fnmatchcase(table, glob)


def duplicate_label(handlers: list[HandlerSpec]) -> int | None:
    """The index of the first handler whose name an earlier one already has."""
    seen: set[str] = set()
    for index, handler in enumerate(handlers):
        if handler.label in seen:
            return index
        seen.add(handler.label)
    return None
