"""Strict reading of JSON documents with a JSON path on every error.

:func:`load_document` turns text, bytes or an already-parsed object into plain
Python values (rejecting a key given twice with different values), and :class:`Node` walks them:
every accessor checks the type and raises :class:`~opendms.errors.ConfigError`
naming the JSON path (``$.rules[3].object-locator.schema-name``) of the bad
field. ``null`` counts as absent for optional fields, because the DMS console
writes ``"old-value": null`` into rules it generates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NoReturn

from opendms.errors import ConfigError

_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits, within 64 bits


class _Object(dict[str, Any]):
    """A JSON object that remembers the keys it saw more than once with different
    values (a key repeated with the same value, as in the DMS guide's example of
    ``$AR_M_SOURCE_SCHEMA``, means one thing and is accepted)."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    seen: list[str] = []
    for key, value in pairs:
        if key in obj and obj[key] != value:
            seen.append(key)
        obj[key] = value
    obj.duplicates = tuple(seen)
    return obj


def load_document(data: str | bytes | dict[str, Any] | list[Any], where: str) -> Any:
    """Parse JSON text (or pass a parsed object through) for :class:`Node`."""
    if isinstance(data, dict | list):
        return data
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text: {exc}", where=where) from exc
    if not isinstance(data, str):
        raise ConfigError(
            f"expected JSON text or a parsed object, got {type(data).__name__}", where=where
        )
    try:
        return json.loads(data, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", where=where
        ) from exc
    except (ValueError, RecursionError) as exc:  # a number too long, nesting too deep
        raise ConfigError(f"JSON that cannot be read: {_short(exc)}", where=where) from None


def _short(exc: BaseException) -> str:
    """The first sentence of an error (Python's int-limit message runs on)."""
    return str(exc).split(";")[0].split(". ")[0]


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Node:
    """One value of the document together with its JSON path."""

    def __init__(self, value: Any, path: str, where: str) -> None:
        self.value = value
        self.path = path
        self.where = where

    def fail(self, message: str) -> NoReturn:
        raise ConfigError(message, where=self.where, path=self.path)

    # -- containers -------------------------------------------------------

    def object(self, known: Iterable[str], required: Iterable[str] = ()) -> Node:
        """Check this is an object with only ``known`` keys and all ``required`` ones."""
        if not isinstance(self.value, dict):
            self.fail(f"expected an object, got {_type_name(self.value)}")
        dups = getattr(self.value, "duplicates", ())
        if dups:
            self.key(dups[0]).fail("key given more than once")
        allowed = set(known)
        for key in self.value:
            if not isinstance(key, str) or key not in allowed:
                self.key(str(key)).fail(f"unknown key {key!r}")
        for key in required:
            if self.get(key) is None:
                self.key(key).fail("required field is missing")
        return self

    def key(self, key: str) -> Node:
        value = self.value.get(key) if isinstance(self.value, dict) else None
        return Node(value, f"{self.path}.{key}", self.where)

    def get(self, key: str) -> Node | None:
        """The child ``key``, or None when it is absent or null."""
        if not isinstance(self.value, dict) or self.value.get(key) is None:
            return None
        return self.key(key)

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def items(self, *, non_empty: bool = False) -> Iterator[Node]:
        """The elements of an array."""
        if not isinstance(self.value, list):
            self.fail(f"expected an array, got {_type_name(self.value)}")
        if non_empty and not self.value:
            self.fail("expected a non-empty array")
        for i, value in enumerate(self.value):
            yield Node(value, f"{self.path}[{i}]", self.where)

    # -- scalars ----------------------------------------------------------

    def text(self, *, non_empty: bool = True) -> str:
        """A string value (non-empty unless told otherwise)."""
        if not isinstance(self.value, str):
            self.fail(f"expected a string, got {_type_name(self.value)}")
        if non_empty and not self.value:
            self.fail("expected a non-empty string")
        return self.value

    def choice(self, allowed: Iterable[str], what: str) -> str:
        value = self.text()
        options = tuple(allowed)
        if value not in options:
            self.fail(f"unknown {what} {value!r} (expected one of: {', '.join(options)})")
        return value

    def name(self) -> str:
        """A string or an integer, as DMS accepts for rule-id and rule-name."""
        if isinstance(self.value, int) and not isinstance(self.value, bool):
            return str(self.value)
        return self.text()

    def integer(self, *, minimum: int = 0) -> int:
        """An integer given as a JSON number or a string of digits."""
        value = self.value
        if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(f"expected an integer, got {_type_name(self.value)}")
        if value < minimum:
            self.fail(f"expected an integer >= {minimum}, got {value}")
        return value

    def scalar_text(self) -> str:
        """A filter or boundary value: a string, or a number written as text."""
        value = self.value
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return json.dumps(value)
        self.fail(f"expected a string or a number, got {_type_name(value)}")

    def absent(self, key: str, reason: str) -> None:
        """Fail when ``key`` is given (non-null) although it has no meaning here."""
        if self.has(key):
            self.key(key).fail(reason)
