"""Values the source did not send, in CSV CDC files: DMS's ``UseCsvNoSupValue`` with
``CsvNoSupValue``.

A value the source did not send (:data:`opendms.changes.UNCHANGED`: an unchanged TOASTed
PostgreSQL value of an update whose old row is unknown) is written as the
``CsvNoSupValue`` text, as it is and never quoted, like the null value, so that a quoted
field holding the same text is still that text. Parquet files, and CSV files without
both settings, get NULL.

pyarrow's CSV writer has no per-cell null text, so the cells get a placeholder that
the file's text then has replaced (:class:`opendms.endpoints.lake.sizing.CsvFile`,
before sizing and compression): a random token absent from the rows' text, rendered by
the writer itself with the file's options. In a text column the cell holds the token;
a column of another type becomes text for the file, each value wrapped in two tokens
that the replacement drops again, so its values read exactly as the writer renders
them (it renders every type through Arrow's cast to text) and stay unquoted.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from opendms.changes import UNCHANGED
from opendms.endpoints.lake.settings import LakeSettings, nosup_value
from opendms.endpoints.lake.sizing import Verbatim, csv_options

_TOKEN_LENGTH = 24


def mark_not_sent(
    arrays: list[pa.Array[Any]],
    names: Sequence[str],
    rows: Sequence[dict[str, Any]],
    settings: LakeSettings,
) -> tuple[list[pa.Array[Any]], Verbatim]:
    """``arrays`` (one CSV file's data columns, named ``names``, row i from ``rows[i]``)
    with placeholders where a row's value is UNCHANGED, and the replacements that turn
    the placeholders into the ``CsvNoSupValue`` text; unchanged when it does not apply."""
    marker = nosup_value(settings)
    if marker is None:
        return arrays, ()
    masks: dict[str, pa.BooleanArray] = {}
    for name in names:
        flags = [row.get(name) is UNCHANGED for row in rows]
        if any(flags):
            masks[name] = pa.array(flags, pa.bool_())
    if not masks:
        return arrays, ()
    token = _token(arrays, settings)
    cell, start, end = token + "M", token + "L", token + "R"
    out = []
    for array, name in zip(arrays, names, strict=True):
        mask = masks.get(name)
        if mask is None:
            out.append(array)
        elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            out.append(pc.if_else(mask, pa.scalar(cell, array.type), array))
        else:
            text = pc.cast(array, pa.string())
            # the stubs want all arguments arrays or all scalars; Arrow takes both
            wrapped = pc.binary_join_element_wise(start, text, end, "")  # type: ignore[call-overload]
            out.append(pc.if_else(mask, pa.scalar(cell, pa.string()), wrapped))
    rendered = _render(start + "0" + end, settings)
    head = rendered[: rendered.index(start.encode()) + len(start)]
    tail = rendered[rendered.index(end.encode()) :]
    verbatim = ((_render(cell, settings), marker.encode()), (head, b""), (tail, b""))
    return out, verbatim


def _token(arrays: list[pa.Array[Any]], settings: LakeSettings) -> str:
    """A random token that no text value of ``arrays`` holds, nor the delimiters."""
    unsafe = set(settings.CsvDelimiter) | set(settings.CsvRowDelimiter) | {'"'}
    alphabet = [c for c in string.ascii_letters + string.digits if c not in unsafe]
    texts = [a for a in arrays if pa.types.is_string(a.type) or pa.types.is_large_string(a.type)]
    while True:
        token = "nosup" + "".join(secrets.choice(alphabet) for _ in range(_TOKEN_LENGTH))
        token = "".join(c for c in token if c not in unsafe)
        if not any(pc.any(pc.match_substring(a, token)).as_py() for a in texts):
            return token


def _render(value: str, settings: LakeSettings) -> bytes:
    """``value`` as the CSV writer writes a text cell with the file's options."""
    out = pa.BufferOutputStream()
    table = pa.table({"v": pa.array([value], pa.string())})
    pacsv.write_csv(table, out, write_options=csv_options(settings, header=False))
    text = bytes(out.getvalue())
    return text[: len(text) - len(settings.CsvRowDelimiter.encode())]
