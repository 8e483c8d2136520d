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
    """Translate the inside of ``[...]`` to a regex class, escaping everything; a
    reversed range (``[z-a]``) matches nothing, as in SQL ``LIKE``."""
    parts: list[str] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            if body[i] <= body[i + 2]:
                parts.append(f"{re.escape(body[i])}-{re.escape(body[i + 2])}")
            i += 3
        else:
            parts.append(re.escape(body[i]))
            i += 1
    return "[" + "".join(parts) + "]" if parts else "(?!)"


def _pieces(pattern: str) -> list[str | None]:
    """One regex per character the pattern matches; None for each ``%``."""
    out: list[str | None] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        close = pattern.find("]", i + 2) if char == "[" else -1
        if char == "%":
            if not out or out[-1] is not None:  # %% is %
                out.append(None)
        elif char == "_":
            out.append(".")
        elif close != -1:
            out.append(_char_class(pattern[i + 1 : close]))
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return out


def translate(pattern: str) -> str:
    """The regular expression (without anchors) equivalent to a DMS pattern.

    Each ``%`` but the last takes the shortest run before the fixed-length piece that
    follows it, in an atomic group (the lookahead-and-backreference form ``fnmatch``
    uses): ``%a%a%a...`` then matches in linear time instead of backtracking
    exponentially, and the leftmost match of a fixed-length piece is always a right one.
    """
    pieces = _pieces(pattern)
    stars = [i for i, p in enumerate(pieces) if p is None]
    out = ["".join(p or "" for p in pieces[: stars[0] if stars else len(pieces)])]
    for n, at in enumerate(stars):
        end = stars[n + 1] if n + 1 < len(stars) else len(pieces)
        fixed = "".join(p or "" for p in pieces[at + 1 : end])
        if n + 1 == len(stars):
            out.append(f".*{fixed}")
        else:
            out.append(f"(?=(?P<g{n}>.*?{fixed}))(?P=g{n})")
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
    def exact_name(self) -> bool:
        """Whether the pattern names exactly one name (no wildcard in it)."""
        return self.exact or ("%" not in self.text and "_" not in self.text)

    @property
    def regex(self) -> str:
        """The (unanchored) regular expression this pattern matches with."""
        return self._regex.pattern

    def __str__(self) -> str:
        return self.text
