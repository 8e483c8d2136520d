"""Strict endpoint settings and URL parameters: one pydantic model per engine.

Each engine declares a subclass of :class:`EndpointSettings`: its fields are the DMS
endpoint settings it applies (typed, with their defaults), ``not_applied`` the DMS
settings it accepts but does not apply here (one warning names each, so a DMS settings
file loads as it is), and ``url_params`` the URL query parameters it passes on to its
driver. Anything else is a ConfigError naming the known names: a misspelt setting is
never silently ignored. Setting names are case-insensitive, as DMS extra connection
attributes are (``captureDDLs`` is ``CaptureDdls``).

:meth:`EndpointSettings.resolve` is the one way in; it never lets a pydantic
``ValidationError`` out, and never prints a value whose name says it is a secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from opendms.endpoints.base import EndpointURL
from opendms.errors import ConfigError

__all__ = ["EndpointSettings", "Flag", "RoleSettings", "Text", "Whole"]

log = logging.getLogger("opendms.endpoints")

_warned: set[tuple[str, str]] = set()
_SECRET_NAME = re.compile(r"password|secret|token", re.I)

_EXPECTED = {
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "int_parsing": "expected a number",
    "int_type": "expected a number",
    "int_from_float": "expected a whole number",
    "greater_than": "must be positive",
    "string_type": "expected text",
}
"""What a pydantic error type means to a user, by its type name (others: pydantic's
own message)."""


def _trimmed(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _folded(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


Flag = Annotated[bool, BeforeValidator(_folded)]
"""A true/false setting: ``true``/``false``, ``y``/``n``, ``yes``/``no``, ``1``/``0``,
``on``/``off`` (any case, blanks around)."""
Whole = Annotated[int, BeforeValidator(_trimmed)]
"""A whole-number setting (``"5"`` or ``5``)."""
Text = Annotated[str, BeforeValidator(_trimmed)]
"""A text setting, without the blanks around it (a number is taken as its text)."""


class EndpointSettings(BaseModel):
    """What one engine's endpoints take; subclasses declare the fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    engine: ClassVar[str] = ""
    """How messages name the engine (``PostgreSQL``)."""
    not_applied: ClassVar[frozenset[str]] = frozenset()
    """DMS setting names accepted with one warning each."""
    url_params: ClassVar[frozenset[str]] = frozenset()
    """URL query keys passed on to the driver."""

    @classmethod
    def resolve(cls, url: EndpointURL, settings: Mapping[str, Any]) -> Self:
        """The settings of an endpoint (defaults filled in); ConfigError for an unknown
        setting or URL parameter, or a value of the wrong kind."""
        cls.check_url(url)
        return cls.parse(settings)

    @classmethod
    def parse(cls, settings: Mapping[str, Any]) -> Self:
        """``settings`` by their (case-insensitive) DMS names, strictly."""
        try:
            return cls.model_validate(cls._by_field(settings))
        except ValidationError as exc:
            raise cls._error(exc.errors()[0]) from None

    @classmethod
    def check_url(cls, url: EndpointURL) -> None:
        """Every URL query parameter must be one the driver takes."""
        allowed = {p.lower() for p in cls.url_params}
        for key in url.query:
            if key.lower() not in allowed:
                known = ", ".join(sorted(cls.url_params)) or "none (use endpoint settings)"
                raise ConfigError(
                    f"endpoint {url}: unknown {cls.engine} URL parameter {key!r}; known: {known}"
                )

    @classmethod
    def known(cls) -> list[str]:
        """Every setting name it takes, applied or not, sorted."""
        return sorted([*cls.model_fields, *cls.not_applied])

    @classmethod
    def ignored(cls, key: str) -> bool:
        """Whether ``key`` is taken and dropped without a word (none by default)."""
        return False

    @classmethod
    def warn_not_applied(cls, name: str) -> None:
        """Say once per process that setting ``name`` is accepted but does nothing."""
        if (cls.engine, name) not in _warned:
            _warned.add((cls.engine, name))
            log.warning(
                "%s endpoint setting %s is accepted but not applied by opendms", cls.engine, name
            )

    @classmethod
    def _by_field(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        fields = {name.lower(): name for name in cls.model_fields}
        skipped = {name.lower(): name for name in cls.not_applied}
        out: dict[str, Any] = {}
        for key, value in settings.items():
            lower = str(key).lower()
            if lower in fields:
                out[fields[lower]] = value
            elif lower in skipped:
                cls.warn_not_applied(skipped[lower])
            elif not cls.ignored(lower):
                known = ", ".join(cls.known())
                raise ConfigError(f"unknown {cls.engine} endpoint setting {key!r}; known: {known}")
        return out

    @classmethod
    def _error(cls, error: ErrorDetails) -> ConfigError:
        """A user's message for pydantic's first error: the engine, the setting, what is
        wrong (and the value given, unless the setting's name says it is a secret)."""
        name = ".".join(str(part) for part in error["loc"]) or "?"
        where = f"{cls.engine} endpoint setting {name}"
        if error["type"] == "value_error":  # a validator's own words
            return ConfigError(f"{where}: {error.get('ctx', {}).get('error', error['msg'])}")
        expected = _EXPECTED.get(error["type"], error["msg"])
        shown = "***" if _SECRET_NAME.search(name) else repr(str(error.get("input")).strip())
        return ConfigError(f"{where}: {expected}, got {shown}")


class RoleSettings(EndpointSettings):
    """The one setting every database engine applies: ``role``, ``source`` or
    ``target``, which "test connection" checks the privileges of."""

    role: Text = ""
