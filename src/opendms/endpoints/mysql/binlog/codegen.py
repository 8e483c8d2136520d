"""The machinery of the generated decoders: source lines, value shapes, decimals.

A column's decoding is a :class:`Code`: source lines that decode one non-null
value at ``p`` in ``b`` into ``{o}`` (and advance ``p``), and lines that skip it.
:class:`Gen` collects the lines of one generated function and the constants they
use; :func:`build` compiles it. The shapes here (fixed size, little-endian number,
length-prefixed) are what ``colcode`` builds each column type from. DECIMAL is
here rather than there because JSON documents hold decimals too (``jsonb``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opendms.endpoints.mysql.binlog.tablemap import ColumnInfo


class Gen:
    """Source lines of one generated function and the constants they use."""

    def __init__(self, ns: dict[str, Any]) -> None:
        self.ns: dict[str, Any] = dict(ns)
        self.lines: list[str] = []

    def const(self, value: Any) -> str:
        name = f"_k{len(self.ns)}"
        self.ns[name] = value
        return name

    def emit(self, indent: int, *lines: str) -> None:
        self.lines.extend("    " * indent + line for line in lines)


_LEN_EXPR = {
    1: "b[p]",
    2: "(b[p] | b[p + 1] << 8)",
    3: "(b[p] | b[p + 1] << 8 | b[p + 2] << 16)",
    4: "_U32(b, p)[0]",
}


@dataclass(frozen=True)
class Code:
    """How to decode (into ``{o}``) and how to skip one non-null value.

    ``size``: bytes of a fixed-size value (None: length-prefixed); ``fmt``: its
    little-endian struct code when it is a plain number (runs of those are
    unpacked with one struct call), ``post`` a conversion of the unpacked ``{x}``.
    """

    decode: tuple[str, ...]
    skip: tuple[str, ...]
    size: int | None = None
    fmt: str = ""
    post: str = "{x}"


def fixed(size: int, *lines: str) -> Code:
    """A fixed-size value: ``lines`` compute ``{o}`` reading at ``p``."""
    return Code((*lines, f"p += {size}"), (f"p += {size}",), size)


def number(fmt: str, post: str = "{x}") -> Code:
    """A little-endian number: decoded alone with one struct, or within a run."""
    size = struct.calcsize("<" + fmt)
    unpack = {"b": "_S8[b[p]]", "B": "b[p]"}.get(fmt) or f"{_STRUCTS[fmt]}(b, p)[0]"
    line = "{o} = " + post.replace("{x}", unpack)
    return Code((line, f"p += {size}"), (f"p += {size}",), size, fmt, post)


_STRUCTS = {"h": "_I16", "H": "_U16", "i": "_I32", "I": "_U32", "q": "_I64", "Q": "_U64"}
_STRUCTS.update({"f": "_F32", "d": "_F64"})


def variable(lenbytes: int, convert: str) -> Code:
    """A length-prefixed value; ``convert`` turns ``{raw}`` (a bytes slice) into the value."""
    raw = f"b[p + {lenbytes}:q]"
    decode = (
        f"q = p + {lenbytes} + {_LEN_EXPR[lenbytes]}",
        "{o} = " + convert.replace("{raw}", raw),
        "p = q",
    )
    return Code(decode, (f"p += {lenbytes} + {_LEN_EXPR[lenbytes]}",))


def decimal_code(col: ColumnInfo, gen: Gen) -> Code:
    """DECIMAL(p,s): groups of 9 digits in 4 big-endian bytes (partial groups in
    fewer), sign in the top bit, negative values stored inverted."""
    precision, scale = col.meta >> 8, col.meta & 0xFF
    int_full, int_part = divmod(precision - scale, 9)
    frac_full, frac_part = divmod(scale, 9)
    frac_bytes = 4 * frac_full + _DIG2BYTES[frac_part]
    size = _DIG2BYTES[int_part] + 4 * int_full + frac_bytes
    if size == 0:
        return fixed(0, "{o} = _D(0)")
    bits = 8 * size
    whole = _groups("t", 8 * frac_bytes, int_full)
    fraction = _frac_groups("t", frac_bytes, frac_full, frac_part, _DIG2BYTES[frac_part])
    unscaled = f"{whole} * {10**scale} + {fraction}" if scale else whole
    unit = gen.const(Decimal(1).scaleb(-scale))
    make = f"_mul(_D({{u}}), {unit})" if scale else "_D({u})"
    return fixed(
        size,
        f"t = int.from_bytes(b[p:p + {size}], 'big') ^ {1 << (bits - 1)}",
        f"if t >> {bits - 1}:",
        f"    t ^= {(1 << bits) - 1}",
        "    {o} = " + make.replace("{u}", f"-({unscaled})"),
        "else:",
        "    {o} = " + make.replace("{u}", unscaled),
    )


_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes of a partial group of n digits


def _groups(var: str, shift: int, full: int) -> str:
    """The integer part: a leading partial group then ``full`` 9-digit groups."""
    expr = f"({var} >> {shift + 32 * full})"
    for k in range(full - 1, -1, -1):
        expr = f"({expr} * 1000000000 + ({var} >> {shift + 32 * k} & 0xFFFFFFFF))"
    return expr


def _frac_groups(var: str, frac_bytes: int, full: int, part: int, part_bytes: int) -> str:
    """The fraction: ``full`` 9-digit groups then a trailing partial group."""
    if frac_bytes == 0:
        return "0"
    terms = []
    for k in range(full):
        shift = 8 * frac_bytes - 32 * (k + 1)
        terms.append((f"({var} >> {shift} & 0xFFFFFFFF)", 9))
    if part:
        terms.append((f"({var} & {(1 << 8 * part_bytes) - 1})", part))
    expr, _ = terms[0]
    for term, digits in terms[1:]:
        expr = f"({expr} * {10**digits} + {term})"
    return expr


def build(gen: Gen, name: str, label: str) -> Any:
    """The function ``name`` that ``gen``'s source defines (``label``: its file name)."""
    source = "\n".join(gen.lines)
    code = compile(source, f"<binlog rows {label}>", "exec")
    exec(code, gen.ns)  # our own generated source: no user text inside
    return gen.ns[name]


def compile_value(code: Code, gen: Gen, label: str) -> Callable[[bytes, int], tuple[Any, int]]:
    """One value's decoder ``(buf, pos) -> (value, next pos)`` from its ``code``."""
    gen.emit(0, "def value(b, p):")
    gen.emit(1, *(line.replace("{o}", "v") for line in code.decode), "return v, p")
    return build(gen, "value", label)  # type: ignore[no-any-return]
