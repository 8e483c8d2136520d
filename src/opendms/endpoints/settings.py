"""Strict endpoint settings and URL parameters for the database engines.

Each engine declares what it takes (:class:`SettingsSpec`): the DMS endpoint settings
it applies (typed), the DMS settings it accepts but does not apply here (one warning
names each, so a DMS settings file loads as it is), and the URL query parameters it
passes on to its driver. Anything else is a ConfigError naming the known names: a
misspelt setting is never silently ignored. Setting names are case-insensitive, as
DMS extra connection attributes are (``captureDDLs`` is ``CaptureDdls``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.errors import ConfigError

log = logging.getLogger("opendms.endpoints")

_BOOL = {"true": True, "false": False, "y": True, "n": False, "yes": True, "no": False}
_BOOL.update({"1": True, "0": False})
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class SettingsSpec:
    """What one engine's endpoints take."""

    engine: str
    applied: dict[str, type]  # canonical DMS name -> bool, int or str
    defaults: dict[str, Any] = field(default_factory=dict)
    not_applied: frozenset[str] = frozenset()  # DMS names accepted with a warning
    url_params: frozenset[str] = frozenset()  # query keys passed to the driver

    def resolve(self, url: EndpointURL, settings: dict[str, Any]) -> dict[str, Any]:
        """The applied settings by canonical name (defaults filled in); ConfigError for an
        unknown setting or URL parameter, or a value of the wrong kind."""
        self.check_url(url)
        out = dict(self.defaults)
        applied = {k.lower(): k for k in self.applied}
        skipped = {k.lower(): k for k in self.not_applied}
        for key, value in settings.items():
            name = applied.get(key.lower())
            if name is not None:
                out[name] = _coerce(self.engine, name, self.applied[name], value)
            elif key.lower() in skipped:
                _warn_not_applied(self.engine, skipped[key.lower()])
            else:
                known = ", ".join(sorted([*self.applied, *self.not_applied]))
                raise ConfigError(f"unknown {self.engine} endpoint setting {key!r}; known: {known}")
        return out

    def check_url(self, url: EndpointURL) -> None:
        """Every URL query parameter must be one the driver takes."""
        allowed = {p.lower() for p in self.url_params}
        for key in url.query:
            if key.lower() not in allowed:
                known = ", ".join(sorted(self.url_params)) or "none (use endpoint settings)"
                raise ConfigError(
                    f"endpoint {url}: unknown {self.engine} URL parameter {key!r}; known: {known}"
                )


def _coerce(engine: str, name: str, kind: type, value: Any) -> Any:
    text = str(value).strip()
    if kind is bool:
        if isinstance(value, bool):
            return value
        if text.lower() not in _BOOL:
            raise ConfigError(
                f"{engine} endpoint setting {name}: expected true or false, got {text!r}"
            )
        return _BOOL[text.lower()]
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(
                f"{engine} endpoint setting {name}: expected a whole number, got {text!r}"
            ) from None
    return text


def _warn_not_applied(engine: str, name: str) -> None:
    if (engine, name) not in _warned:
        _warned.add((engine, name))
        log.warning("%s endpoint setting %s is accepted but not applied by opendms", engine, name)
