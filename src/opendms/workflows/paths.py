"""The States Language's data flow: reference paths, payload templates and intrinsic
functions, as a state applies them to its input (InputPath, Parameters, ResultSelector,
ResultPath, OutputPath).

A reference path is ``$`` (the input) or ``$$`` (the context object) followed by
``.field``, ``['field']`` or ``[index]`` steps. A payload template copies its values,
and a field whose name ends in ``.$`` takes the value of a path or of an intrinsic
function call (``States.Format('{} rows', $.count)``) under the name without ``.$``.
Errors are :class:`PathError` with the ASL error name ``States.Runtime`` (a path that
matches nothing) or ``States.IntrinsicFailure``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

__all__ = ["PathError", "apply_result_path", "evaluate", "read_path", "render"]

_STEP = re.compile(r"\.([A-Za-z_$][\w$-]*)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")


class PathError(Exception):
    """A path or intrinsic function failed: ``error`` is the ASL error name."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error, self.cause = error, cause


def _steps(path: str) -> tuple[bool, list[str | int]]:
    """(context object?, the steps) of a reference path."""
    root, rest = ("$$", path[2:]) if path.startswith("$$") else ("$", path[1:])
    if not path.startswith("$"):
        raise PathError("States.Runtime", f"{path!r} is not a path (it starts with $)")
    steps: list[str | int] = []
    at = 0
    while at < len(rest):
        m = _STEP.match(rest, at)
        if m is None:
            raise PathError("States.Runtime", f"{path!r}: cannot read it from {rest[at:]!r}")
        if m.group(1) is not None:
            steps.append(m.group(1))
        elif m.group(2) is not None:
            steps.append(re.sub(r"\\(.)", r"\1", m.group(2)))
        else:
            steps.append(int(m.group(3)))
        at = m.end()
    return root == "$$", steps


def read_path(path: str, data: Any, context: Any = None) -> Any:
    """The value ``path`` names in ``data`` (``$$``: in ``context``)."""
    of_context, steps = _steps(path)
    value = context if of_context else data
    for step in steps:
        if not _holds(value, step):
            raise PathError("States.Runtime", f"the path {path!r} matches nothing in the input")
        value = value[step]
    return value


def _holds(value: Any, step: str | int) -> bool:
    """Whether ``value`` has a member ``step`` (an index of a list, a field of an object)."""
    if isinstance(step, int):
        return isinstance(value, list) and step < len(value)
    return isinstance(value, dict) and step in value


def apply_result_path(path: str | None, data: Any, result: Any) -> Any:
    """``data`` with ``result`` placed at ``path`` (``$``: the result replaces it; None:
    the result is dropped). A field on the way that is missing is created."""
    if path is None:
        return data
    of_context, steps = _steps(path)
    if of_context:
        raise PathError("States.Runtime", f"ResultPath {path!r} cannot write the context")
    if not steps:
        return result
    out = json.loads(json.dumps(data)) if data is not None else {}
    here = out
    for step in steps[:-1]:
        if isinstance(step, int) or not isinstance(here, dict):
            raise PathError("States.Runtime", f"ResultPath {path!r}: not an object path")
        here = here.setdefault(step, {})
    last = steps[-1]
    if isinstance(last, int) or not isinstance(here, dict):
        raise PathError("States.Runtime", f"ResultPath {path!r}: not an object path")
    here[last] = result
    return out


def render(template: Any, data: Any, context: Any = None) -> Any:
    """A payload template filled from ``data`` (Parameters, ResultSelector, ItemSelector)."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise PathError("States.Runtime", f"{key}: a path or function, not {value!r}")
                out[key[:-2]] = evaluate(value, data, context)
            else:
                out[key] = render(value, data, context)
        return out
    if isinstance(template, list):
        return [render(v, data, context) for v in template]
    return template


def evaluate(text: str, data: Any, context: Any = None) -> Any:
    """A ``.$`` field's value: a path, or an intrinsic function call."""
    text = text.strip()
    if text.startswith("$"):
        return read_path(text, data, context)
    if text.startswith("States."):
        call, at = _Parser(text, data, context).call(0)
        if text[at:].strip():
            raise PathError("States.IntrinsicFailure", f"{text!r}: unexpected {text[at:]!r}")
        return call
    raise PathError("States.Runtime", f"{text!r} is neither a path nor an intrinsic function")


class _Parser:
    """Reads one intrinsic call: ``States.Name(arg, ...)``; arguments are strings in
    single quotes, numbers, booleans, null, paths, or calls."""

    def __init__(self, text: str, data: Any, context: Any) -> None:
        self.text, self.data, self.context = text, data, context

    def fail(self, why: str) -> PathError:
        return PathError("States.IntrinsicFailure", f"{self.text!r}: {why}")

    def call(self, at: int) -> tuple[Any, int]:
        m = re.compile(r"States\.(\w+)\(").match(self.text, at)
        if m is None:
            raise self.fail(f"expected States.Name( at {at}")
        name, at = m.group(1), m.end()
        args: list[Any] = []
        at = self._space(at)
        if self.text[at : at + 1] == ")":
            return self._run(name, args), at + 1
        while True:
            value, at = self.argument(self._space(at))
            args.append(value)
            at = self._space(at)
            if self.text[at : at + 1] == ",":
                at += 1
            elif self.text[at : at + 1] == ")":
                return self._run(name, args), at + 1
            else:
                raise self.fail(f"expected , or ) at {at}")

    def argument(self, at: int) -> tuple[Any, int]:
        text = self.text
        if text.startswith("States.", at):
            return self.call(at)
        if text[at : at + 1] == "'":
            m = re.compile(r"'((?:[^'\\]|\\.)*)'").match(text, at)
            if m is None:
                raise self.fail(f"an unclosed string at {at}")
            return re.sub(r"\\(.)", r"\1", m.group(1)), m.end()
        m = re.compile(r"\$\$?(?:\.[\w$-]+|\['(?:[^'\\]|\\.)*'\]|\[\d+\])*").match(text, at)
        if m is not None and m.group(0):
            return read_path(m.group(0), self.data, self.context), m.end()
        m = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null").match(text, at)
        if m is None:
            raise self.fail(f"cannot read an argument at {at}")
        return json.loads(m.group(0)), m.end()

    def _space(self, at: int) -> int:
        while at < len(self.text) and self.text[at] == " ":
            at += 1
        return at

    def _run(self, name: str, args: list[Any]) -> Any:
        function = _FUNCTIONS.get(name)
        if function is None:
            raise self.fail(f"no intrinsic function States.{name}")
        try:
            return function(*args)
        except PathError:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise self.fail(f"States.{name}: {exc}") from None


def _format(template: str, *values: Any) -> str:
    parts = re.split(r"(?<!\\)\{\}", template)
    if len(parts) - 1 != len(values):
        raise ValueError(f"{len(parts) - 1} placeholders for {len(values)} values")
    out = parts[0]
    for value, part in zip(values, parts[1:], strict=True):
        out += (value if isinstance(value, str) else json.dumps(value)) + part
    return re.sub(r"\\([{}'\\])", r"\1", out)


def _number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _range(first: Any, last: Any, step: Any) -> list[int]:
    a, b, s = _number(first), _number(last), _number(step)
    if s == 0:
        raise ValueError("the step is 0")
    return list(range(a, b + (1 if s > 0 else -1), s))


def _partition(items: list[Any], size: Any) -> list[list[Any]]:
    n = _number(size)
    if n < 1:
        raise ValueError("the chunk size is less than 1")
    return [items[i : i + n] for i in range(0, len(items), n)]


def _unique(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def _hash(value: str, algorithm: str) -> str:
    names = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384"}
    names["SHA-512"] = "sha512"
    return hashlib.new(names[algorithm], value.encode()).hexdigest()


def _merge(a: dict[str, Any], b: dict[str, Any], deep: bool) -> dict[str, Any]:
    if deep:
        raise ValueError("a deep merge is not supported (the third argument must be false)")
    return {**a, **b}


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "Format": _format,
    "StringToJson": lambda text: json.loads(text),
    "JsonToString": lambda value: json.dumps(value, separators=(",", ":")),
    "Array": lambda *values: list(values),
    "ArrayPartition": _partition,
    "ArrayContains": lambda items, value: value in items,
    "ArrayRange": _range,
    "ArrayGetItem": lambda items, index: items[_number(index)],
    "ArrayLength": lambda items: len(items),
    "ArrayUnique": _unique,
    "Base64Encode": lambda text: base64.b64encode(text.encode()).decode(),
    "Base64Decode": lambda text: base64.b64decode(text.encode()).decode(),
    "Hash": _hash,
    "JsonMerge": _merge,
    "MathRandom": lambda start, end, *seed: random.Random(*seed).randint(  # both ends
        _number(start), _number(end)
    ),
    "MathAdd": lambda a, b: _number(a) + _number(b),
    "StringSplit": lambda text, chars: [p for p in re.split(f"[{re.escape(chars)}]", text) if p],
    "UUID": lambda: str(uuid.uuid4()),
}
