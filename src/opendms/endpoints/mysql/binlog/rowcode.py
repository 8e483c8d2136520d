"""The generated walker of a rows event: :func:`compile_rows`.

Speed is the point of the binlog decoder: a rows event holds dozens of rows, so
when a TABLE_MAP arrives the decoder generates (once per table definition and
column images) a Python function that walks every row of a rows event with the
column decoders inlined: no per-value dispatch, no per-row dicts, and only the
key columns of a before image are decoded (the other values are skipped by
length) unless the table's changes must carry their old rows (``old_rows``:
the lake, source filters).

A rows event holds, per row, one image (insert, delete) or two (update): a null
bitmap over the columns present in the image, then the non-null values.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from opendms.changes import Change, Op
from opendms.endpoints.mysql.binlog.codegen import Code, Gen, build
from opendms.endpoints.mysql.binlog.colcode import NAMESPACE, column_code
from opendms.endpoints.mysql.binlog.events import ROWS_DELETE, ROWS_UPDATE, ROWS_WRITE
from opendms.endpoints.mysql.binlog.tablemap import ColumnInfo, RowsFn, TableMapEvent


def _new_change_fast(values: dict[str, Any]) -> Change:
    change: Change = Change.__new__(Change)
    object.__setattr__(change, "__dict__", values)
    return change


def _fast_changes_work() -> bool:
    """Whether a Change can be built by filling its __dict__ (about 2.5x faster than
    the frozen dataclass __init__); checked once, so a change to Change falls back."""
    fields = {
        "op": Op.UPDATE,
        "schema": "s",
        "table": "t",
        "columns": ("a",),
        "values": (1,),
        "key_columns": ("a",),
        "key": (0,),
        "ddl": (),
        "table_ddl": None,
        "stat": None,
        "error": "",
        "old_columns": (),
        "old_values": (),
        "origin": 0,
    }
    try:
        fast = _new_change_fast(dict(fields))
    except (AttributeError, TypeError):
        return False
    slow = Change(
        Op.UPDATE, "s", "t", columns=("a",), values=(1,), key_columns=("a",), key=(0,), ddl=()
    )
    return fast == slow and repr(fast) == repr(slow) and vars(fast) == vars(slow)


_FAST_CHANGES = _fast_changes_work()


def rows_fn(tm: TableMapEvent, kind: int, before: int, after: int) -> RowsFn:
    """The compiled walker of one rows event kind for these column images (kept on ``tm``)."""
    key = (kind, before, after)
    fn = tm.walkers.get(key)
    if fn is None:
        fn = tm.walkers[key] = compile_rows(tm, kind, before, after)
    return fn


def bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def _image(
    gen: Gen, cols: tuple[ColumnInfo, ...], present: list[int], wanted: dict[int, str], indent: int
) -> None:
    """Source for one row image: the null bitmap, then each present column decoded
    into ``wanted[i]`` or skipped. Rows without NULLs take a branch without null
    tests, where runs of fixed-size columns are one struct call (or one skip)."""
    nbytes = (len(present) + 7) // 8
    if nbytes == 1:
        gen.emit(indent, "nb = b[p]", "p += 1")
    elif nbytes:
        gen.emit(indent, f"nb = int.from_bytes(b[p:p + {nbytes}], 'little')", f"p += {nbytes}")
    codes = [(bit, i, cols[i], column_code(cols[i], gen)) for bit, i in enumerate(present)]
    nullable = sum(1 << bit for bit, _i, col, _c in codes if col.nullable)
    if not nullable:
        _without_nulls(gen, codes, wanted, indent)
        return
    gen.emit(indent, f"if nb & {nullable}:")
    _with_nulls(gen, codes, wanted, indent + 1)
    gen.emit(indent, "else:")
    _without_nulls(gen, codes, wanted, indent + 1)


_Coded = tuple[int, int, ColumnInfo, Code]


def _with_nulls(gen: Gen, codes: list[_Coded], wanted: dict[int, str], indent: int) -> None:
    for bit, i, col, code in codes:
        out = wanted.get(i)
        if out is None:
            if col.nullable:
                gen.emit(indent, f"if not nb & {1 << bit}:")
                gen.emit(indent + 1, *code.skip)
            else:
                gen.emit(indent, *code.skip)
            continue
        lines = [line.replace("{o}", out) for line in code.decode]
        if col.nullable:
            gen.emit(indent, f"if nb & {1 << bit}:", f"    {out} = None", "else:")
            gen.emit(indent + 1, *lines)
        else:
            gen.emit(indent, *lines)


def _without_nulls(gen: Gen, codes: list[_Coded], wanted: dict[int, str], indent: int) -> None:
    run: list[tuple[int, Code]] = []
    for _bit, i, _col, code in codes:
        out = wanted.get(i)
        if code.size is not None and (out is None or code.fmt):
            run.append((i, code))
            continue
        _run(gen, run, wanted, indent)
        run = []
        if out is None:
            gen.emit(indent, *code.skip)
        else:
            gen.emit(indent, *(line.replace("{o}", out) for line in code.decode))
    _run(gen, run, wanted, indent)


def _run(gen: Gen, run: list[tuple[int, Code]], wanted: dict[int, str], indent: int) -> None:
    """Consecutive fixed-size columns: skipped at once, or unpacked by one struct."""
    size = sum(code.size or 0 for _i, code in run)
    outs = [(wanted[i], code) for i, code in run if i in wanted]
    if len(outs) == 1 and len(run) == 1:
        gen.emit(indent, *(line.replace("{o}", outs[0][0]) for line in run[0][1].decode))
        return
    if outs:
        fmt = "".join(code.fmt if i in wanted else f"{code.size}x" for i, code in run)
        unpack = gen.const(struct.Struct("<" + fmt).unpack_from)
        gen.emit(indent, f"{', '.join(o for o, _c in outs)}, = {unpack}(b, p)")
        for out, code in outs:
            if code.post != "{x}":
                gen.emit(indent, f"{out} = " + code.post.replace("{x}", out))
    if size:
        gen.emit(indent, f"p += {size}")


OPS = {ROWS_WRITE: Op.INSERT, ROWS_UPDATE: Op.UPDATE, ROWS_DELETE: Op.DELETE}


def key_columns(tm: TableMapEvent, present: list[int]) -> list[int]:
    """Primary-key columns identifying the old row (all present columns without a PK)."""
    if tm.primary_key and all(i in present for i in tm.primary_key):
        return list(tm.primary_key)
    return present


def compile_rows(tm: TableMapEvent, kind: int, before: int, after: int) -> RowsFn:
    """Generate the walker of all rows of one rows event (see the module docstring).

    ``before`` / ``after`` are the bitmaps of columns present in the images (a
    write has only ``after``, a delete only ``before``). With ``tm.old_rows`` every
    column of the before image is decoded, and the change carries them as its old row.
    """
    gen = Gen(NAMESPACE)
    cols = tm.columns
    gen.emit(0, "def rows(b, p, end, out):", "    append = out.append", "    while p < end:")
    key_cols: list[int] = []
    old_cols: list[int] = []
    if kind in (ROWS_UPDATE, ROWS_DELETE):
        present = bits(before)
        key_cols = key_columns(tm, present)
        old_cols = present if tm.old_rows and present != key_cols else []
        _image(gen, cols, present, {i: f"k{i}" for i in key_cols + old_cols}, 2)
    value_cols: list[int] = []
    if kind in (ROWS_WRITE, ROWS_UPDATE):
        value_cols = bits(after)
        _image(gen, cols, value_cols, {i: f"v{i}" for i in value_cols}, 2)
    fields = {
        "op": gen.const(OPS[kind]),
        "schema": gen.const(tm.schema),
        "table": gen.const(tm.table),
        "columns": gen.const(tuple(cols[i].name for i in value_cols)),
        "values": _tuple_expr(f"v{i}" for i in value_cols),
        "key_columns": gen.const(tuple(cols[i].name for i in key_cols)),
        "key": _tuple_expr(f"k{i}" for i in key_cols),
        "ddl": "()",
        "table_ddl": "None",
        "stat": "None",
        "error": "''",
        "old_columns": gen.const(tuple(cols[i].name for i in old_cols)),
        "old_values": _tuple_expr(f"k{i}" for i in old_cols),
        "origin": "0",
    }
    gen.emit(2, *_change_lines(fields), "append(c)")
    gen.emit(1, "return p")
    fn: RowsFn = build(gen, "rows", tm.qualified)
    return fn


def _tuple_expr(names: Iterable[str]) -> str:
    items = list(names)
    return f"({', '.join(items)},)" if items else "()"


def _change_lines(fields: dict[str, str]) -> list[str]:
    if _FAST_CHANGES:
        body = ", ".join(f"{k!r}: {v}" for k, v in fields.items())
        return ["c = _new(_Change)", f"_setattr(c, '__dict__', {{{body}}})"]
    args = ", ".join(f"{k}={v}" for k, v in fields.items())
    return [f"c = _Change({args})"]
