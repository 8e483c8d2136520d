"""DMS name patterns: ``%`` any sequence, ``_`` one character, ``[...]`` a set.

Matching is case-sensitive, as DMS documents for selection and transformation
rules (whether the *source* folds case is the catalog's business). ``[_]`` and
``[%]`` match a literal underscore and percent sign; ``[ab]`` and ``[a-d]``
match one character of a set or range. A ``[`` without a closing ``]`` is an
ordinary character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def _char_class(body: str) -> str:
    """Translate the inside of ``[...]`` to a regex class, escaping everything."""
    parts: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            parts.append(f"{re.escape(body[i])}-{re.escape(body[i + 2])}")
            i += 3
        else:
            parts.append(re.escape(body[i]))
            i += 1
    return "[" + "".join(parts) + "]"


def translate(pattern: str) -> str:
    """The regular expression (without anchors) equivalent to a DMS pattern."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        close = pattern.find("]", i + 2) if char == "[" else -1
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        elif close != -1:
            out.append(_char_class(pattern[i + 1 : close]))
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Pattern:
    """A compiled DMS name pattern; ``exact`` disables wildcards."""

    text: str
    exact: bool = False
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        source = re.escape(self.text) if self.exact else translate(self.text)
        object.__setattr__(self, "_regex", re.compile(source, re.DOTALL))

    def matches(self, name: str) -> bool:
        return self._regex.fullmatch(name) is not None

    @property
    def regex(self) -> str:
        """The (unanchored) regular expression this pattern matches with."""
        return self._regex.pattern

    def __str__(self) -> str:
        return self.text
