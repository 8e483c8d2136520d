"""An independent reader of a DMS-style lake: every file under the prefix, folded by Op.

Written from the AWS DMS user guide ("Using Amazon S3 as a target for AWS DMS") and the
README (sections "Lake settings" and "CDC files in the lake"), not from opendms's
code; the file rules are in :mod:`tests.oracles.lakefiles`.

* Every file under the lake root is read, except the README's control folder
  ``_opendms/``: a file outside a ``<schema>/<table>/`` folder, or whose name is
  neither a LOAD nor a CDC name, or with another format's extension, or in the wrong
  folder, is a :class:`LakeError`. A table's LOAD counters (per segment) run 1, 2, …
  without a gap, and no two CDC files share a stamp.
* A table whose parallel load names its segments (``ranges`` with ``segment-names``,
  given by the test as ``segment_names``) has its LOAD files in a folder per segment,
  ``<schema>/<table>/<segment name>/LOAD…`` (the guide's "Parallel load of partitioned
  sources when using Amazon S3 as a target"), each folder counting from 1, none in the
  table folder itself nor with a ``SEGMENTn_`` prefix; a folder of another name fails.
  They are read segment by segment in the order of the names.
* A table now is its LOAD files (counter order), then its CDC files in name order
  (which is commit order), rows in file order, folded by key with ``I``, ``U`` and
  ``D`` told apart. Strict (the default): a LOAD row of a key already held, an ``I``
  of a key held, a ``U`` or ``D`` of a key not held is an error, except the README's
  key change, a ``D`` followed in the same file by the ``U`` of the new row; a ``D``
  row's values, where it carries them, are those of the row it deletes; commit times
  (the timestamp column) never go back in name order.
* Lenient, only where the README says a change may find the lake otherwise: the
  catch-up after a full load without a shared snapshot (changes already in the
  LOAD files), and the updates of a filtered table whose old row the source did not
  send (a ``U`` of a row never written, a ``D`` of a key never written): ``I`` and ``U``
  put the row, a ``D`` of a key not held does nothing.
* A table without a key (``key=()``) is a multiset of rows: ``I`` adds one, ``D``
  removes one equal row, and an update is a ``D`` of the old row then a ``U``.
* A value the source did not send (:data:`~tests.oracles.lakefiles.NOT_SENT`, CSV CDC
  files with ``UseCsvNoSupValue`` and ``CsvNoSupValue``) is a column the change left as
  it was: a ``U`` keeps the row's value (after a key change's ``D``, the deleted row's);
  a ``D`` row's such value is not compared; an ``I`` cannot lack a value (strict). Where
  no row is held (lenient) the value stays NOT_SENT in ``rows``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow.fs as pafs

from tests.oracles.lakefiles import (
    CDC_NAME,
    CONTROL_FOLDER,
    LOAD_NAME,
    NOT_SENT,
    FileRow,
    LakeError,
    Layout,
    Parse,
    Row,
    read_file,
)

__all__ = [
    "NOT_SENT",
    "FileRow",
    "Lake",
    "LakeError",
    "LakeTable",
    "lake_files",
    "lake_filesystem",
    "read_lake",
]
Keys = Mapping[str, Sequence[str]] | Sequence[str]
Columns = Mapping[str, Sequence[str]] | Sequence[str] | None
Segments = Mapping[str, Sequence[str]]
_URL_KEYS = {"endpoint_url", "region"}


@dataclass
class LakeTable:
    """One table as read: its files (paths from the lake root), its rows now (sorted by
    key), and every row of its LOAD and CDC files in the order read."""

    schema: str
    name: str
    key: tuple[str, ...]
    loads: list[str] = field(default_factory=list)
    cdc: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    load_rows: list[FileRow] = field(default_factory=list)
    changes: list[FileRow] = field(default_factory=list)

    def cdc_names(self) -> list[str]:
        """The CDC files by path from the table folder (date folders included)."""
        return [p.split("/", 2)[2] for p in self.cdc]

    def ops(self) -> list[tuple[str, list[str]]]:
        """Each CDC file (by path from the table folder) with its rows' Ops, in order."""
        return [(p.split("/", 2)[2], [c.op for c in self.changes if c.file == p]) for p in self.cdc]

    def op_rows(self, *columns: str) -> list[tuple[Any, ...]]:
        """Every CDC row in the order read: (Op, the values of ``columns``)."""
        return [(c.op, *(c.row.get(name) for name in columns)) for c in self.changes]


@dataclass
class Lake:
    """Every data file under the lake root, and its tables by ``schema.table``."""

    files: list[str]
    tables: dict[str, LakeTable]

    def __getitem__(self, name: str) -> LakeTable:
        if name not in self.tables:
            raise LakeError(f"no table {name} in the lake (tables: {sorted(self.tables)})")
        return self.tables[name]


def read_lake(
    where: str | Path,
    settings: Mapping[str, Any] | str | None = None,
    *,
    keys: Keys,
    lenient: bool | Collection[str] = False,
    columns: Columns = None,
    parse: Parse | None = None,
    segment_names: Segments | None = None,
) -> Lake:
    """Read every file under ``where`` (a directory, ``file://`` or ``s3://`` URL whose
    query may hold ``endpoint_url``, ``region`` and settings; S3 credentials from the
    ``AWS_*`` environment) with the DMS endpoint ``settings``.

    ``keys``: the key columns of every table, or by ``schema.table`` (``()``: no key);
    ``lenient``: True, or the tables (``schema.table``) to fold leniently;
    ``columns``: the data columns of headerless CSV files (likewise); ``parse``: text
    to value, by column, for CSV values (which are text otherwise); ``segment_names``:
    by ``schema.table``, the ``segment-names`` of its ``ranges`` parallel load."""
    fs, root, query = _open(where)
    layout = Layout.of({**query, **_as_dict(settings)})
    files, grouped = _group(_all_files(fs, root), layout, segment_names or {})
    tables = {}
    for name, (loads, cdc) in grouped.items():
        schema, table = name.split(".", 1)
        t = LakeTable(schema, table, tuple(_for(keys, name, "key")), loads, cdc)
        cols = _columns(columns, name)
        read = _Reader(fs, root, layout, cols, parse)
        loose = lenient if isinstance(lenient, bool) else name in lenient
        _fold(t, read, _Fold(t.key, loose, "D" in layout.cdc_ops))
        tables[name] = t
    return Lake(files, tables)


def lake_files(
    where: str | Path,
    settings: Mapping[str, Any] | str | None = None,
    segment_names: Segments | None = None,
) -> Lake:
    """The lake's files by table, names checked, no row read (``rows`` stay empty)."""
    fs, root, query = _open(where)
    layout = Layout.of({**query, **_as_dict(settings)})
    files, grouped = _group(_all_files(fs, root), layout, segment_names or {})
    tables = {}
    for name, (loads, cdc) in grouped.items():
        schema, table = name.split(".", 1)
        tables[name] = LakeTable(schema, table, (), loads, cdc)
    return Lake(files, tables)


def lake_filesystem(where: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem and root path of a lake (to damage or plant files in tests)."""
    fs, root, _ = _open(where)
    return fs, root


def _as_dict(settings: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if isinstance(settings, str):
        return dict(p.split("=", 1) for p in settings.split(";") if p.strip())
    return dict(settings or {})


def _columns(columns: Columns, table: str) -> list[str] | None:
    """The data columns the test gives for ``table`` (only headerless CSV needs them)."""
    if columns is None or (isinstance(columns, Mapping) and table not in columns):
        return None
    return _for(columns, table, "columns")


def _for(values: Mapping[str, Sequence[str]] | Sequence[str], table: str, what: str) -> list[str]:
    if isinstance(values, Mapping):
        if table not in values:
            raise LakeError(f"the test gives no {what} for lake table {table}")
        return list(values[table])
    return list(values)


# -- every file under the prefix ---------------------------------------------------------


def _open(where: str | Path) -> tuple[pafs.FileSystem, str, dict[str, str]]:
    text = os.fspath(where)
    parts = urlsplit(text)
    query = dict(parse_qsl(parts.query))
    fs: pafs.FileSystem
    if parts.scheme == "s3":
        endpoint = urlsplit(query.get("endpoint_url", ""))
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint.netloc or None,
            scheme="http" if endpoint.scheme == "http" else "https",
            region=query.get("region", "us-east-1"),
        )
        root = f"{parts.netloc}{parts.path}".rstrip("/")
    else:
        fs = pafs.LocalFileSystem()
        root = os.path.abspath(parts.path if parts.scheme == "file" else text)
    settings = {k: v for k, v in query.items() if k.lower() not in _URL_KEYS}
    return fs, root, settings


def _all_files(fs: pafs.FileSystem, root: str) -> list[str]:
    """Every file under ``root``, by path from it."""
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    infos = fs.get_file_info(selector)
    return sorted(i.path[len(root) + 1 :] for i in infos if i.type == pafs.FileType.File)


def _group(
    paths: list[str], layout: Layout, segment_names: Segments
) -> tuple[list[str], dict[str, tuple[list[str], list[str]]]]:
    """The data files, and per ``schema.table`` its LOAD files (counter order) and
    CDC files (name order)."""
    data = [p for p in paths if p.split("/", 1)[0] != CONTROL_FOLDER]
    loads: dict[str, list[str]] = {}
    cdc: dict[str, list[str]] = {}
    for path in data:
        table, kind = _classify(path, layout, segment_names)
        (loads if kind == "load" else cdc).setdefault(table, []).append(path)
        loads.setdefault(table, [])
    grouped = {
        t: (_load_order(t, loads[t], segment_names.get(t, ())), _cdc_order(t, cdc.get(t, [])))
        for t in loads
    }
    return data, grouped


def _classify(path: str, layout: Layout, segment_names: Segments) -> tuple[str, str]:
    parts = path.split("/")
    if len(parts) < 3:
        raise LakeError(f"{path}: a file outside any <schema>/<table>/ folder")
    table, name, folder = f"{parts[0]}.{parts[1]}", parts[-1], "/".join(parts[2:-1])
    load, cdc = LOAD_NAME.match(name), CDC_NAME.match(name)
    match = load or cdc
    if match is None:
        raise LakeError(
            f"{path}: the name is neither a LOAD file name ([SEGMENTn_]LOAD + 8 hex "
            "digits) nor a CDC file name (yyyymmdd-hhmmssfff)"
        )
    if match["ext"] != layout.extension:
        raise LakeError(f"{path}: expected the extension .{layout.extension}")
    named = segment_names.get(table, ())
    if load and named:
        if folder not in named or load["segment"]:
            raise LakeError(
                f"{path}: expected LOAD… in one of the segment folders {list(named)} "
                "(ranges with segment-names)"
            )
        return table, "load"
    expected = "" if load else layout.date_folder(match["stamp"])
    if folder != expected:
        raise LakeError(f"{path}: expected in the folder {expected or 'of the table'!r}")
    return table, "load" if load else "cdc"


def _load_order(table: str, paths: list[str], named: Sequence[str] = ()) -> list[str]:
    """LOAD files by segment (number, or place in ``named`` for segment folders), then
    counter; each segment's counters are 1, 2, …"""
    by_segment: dict[int, list[tuple[int, str]]] = {}
    for path in paths:
        folder, _, name = path.split("/", 2)[2].rpartition("/")
        match = LOAD_NAME.match(name)
        assert match is not None
        segment = int(match["segment"][7:-1]) if match["segment"] else 0
        if folder:
            segment = list(named).index(folder) + 1
        by_segment.setdefault(segment, []).append((int(match["counter"], 16), path))
    ordered: list[str] = []
    for segment in sorted(by_segment):
        counters = sorted(by_segment[segment])
        if [c for c, _ in counters] != list(range(1, len(counters) + 1)):
            found = [p.split("/", 2)[2] for _, p in counters]
            raise LakeError(f"{table}: LOAD counters do not run 1, 2, …: {found}")
        ordered += [p for _, p in counters]
    return ordered


def _cdc_order(table: str, paths: list[str]) -> list[str]:
    """CDC files in name order (stamps), whatever their date folders."""
    named = sorted((p.rsplit("/", 1)[-1], p) for p in paths)
    stamps = [n.split(".", 1)[0] for n, _ in named]
    if len(set(stamps)) != len(stamps):
        raise LakeError(f"{table}: two CDC files share a stamp: {[p for _, p in named]}")
    return [p for _, p in named]


# -- folding --------------------------------------------------------------------------------


@dataclass
class _Reader:
    fs: pafs.FileSystem
    root: str
    layout: Layout
    columns: Sequence[str] | None
    parse: Parse | None

    def rows(self, path: str, cdc: bool) -> list[FileRow]:
        full = f"{self.root}/{path}"
        return read_file(self.fs, full, path, self.layout, cdc, self.columns, self.parse)


def _fold(table: LakeTable, read: _Reader, fold: _Fold) -> None:
    for path in table.loads:
        for change in read.rows(path, cdc=False):
            table.load_rows.append(change)
            fold.load(change)
    for path in table.cdc:
        for change in read.rows(path, cdc=True):
            _check_commit_order(table.changes, change, fold.lenient)
            fold.apply(change, table.changes[-1] if table.changes else None)
            table.changes.append(change)
    table.rows = fold.result()


def _check_commit_order(done: list[FileRow], change: FileRow, lenient: bool) -> None:
    if lenient or not done or done[-1].commit is None or change.commit is None:
        return
    if change.commit < done[-1].commit:
        raise LakeError(
            f"{change.file} row {change.index}: committed at {change.commit}, before the "
            f"previous change ({done[-1].file}, {done[-1].commit}): files out of commit order"
        )


class _Fold:
    """A table's rows by key (or, without a key, a multiset), changed by each row.

    ``deletes``: whether the files hold ``D`` rows; without them (CdcInsertsAndUpdates)
    a key change is only the ``U`` of the new key, so a ``U`` may find no row."""

    def __init__(self, key: tuple[str, ...], lenient: bool, deletes: bool = True) -> None:
        self.key, self.lenient, self.deletes = key, lenient, deletes
        self.rows: dict[Any, Row] = {}
        self.serial = 0
        self.deleted: Row | None = None  # the row the last D removed

    def load(self, change: FileRow) -> None:
        ident = self._ident(change)
        if ident in self.rows and not self.lenient:
            raise LakeError(f"{_where(change)}: key {ident} written twice by the full load")
        self.rows[ident] = change.row

    def apply(self, change: FileRow, previous: FileRow | None) -> None:
        if not self.key:
            return self._apply_keyless(change, previous)
        ident = self._ident(change)
        held = ident in self.rows
        if change.op == "D":
            return self._delete(change, ident)
        if change.op == "I" and held and not self.lenient:
            raise LakeError(f"{_where(change)}: an I of key {ident}, which the table holds")
        moved = self._moved(previous, change)
        if change.op == "U" and not held and not (self.lenient or moved or not self.deletes):
            raise LakeError(f"{_where(change)}: a U of key {ident}, which the table does not hold")
        current = self.rows[ident] if held else self.deleted if moved else None
        self.rows[ident] = self._filled(change, current)
        return None

    def _filled(self, change: FileRow, current: Row | None) -> Row:
        """The row a change writes: a value the source did not send is ``current``'s."""
        unsent = [c for c, v in change.row.items() if v is NOT_SENT]
        if not unsent:
            return change.row
        if change.op == "I" and not self.lenient:
            raise LakeError(f"{_where(change)}: an I without the value of {unsent}")
        if current is None:
            return change.row
        return {c: current.get(c) if v is NOT_SENT else v for c, v in change.row.items()}

    def _moved(self, previous: FileRow | None, change: FileRow) -> bool:
        """The U of a key change: right after the D of another key."""
        if previous is None or not _pair(previous, change):
            return False
        return bool(self._ident(previous) != self._ident(change))

    def _delete(self, change: FileRow, ident: Any) -> None:
        current = self.deleted = self.rows.pop(ident, None)
        if current is None:
            if not self.lenient:
                raise LakeError(
                    f"{_where(change)}: a D of key {ident}, which the table does not hold"
                )
            return
        _check_image(change, current)

    def _apply_keyless(self, change: FileRow, previous: FileRow | None) -> None:
        if change.op == "D":
            found = [i for i, row in self.rows.items() if _same(change.row, row)]
            self.deleted = self.rows.pop(found[0]) if found else None
            if not found and not self.lenient:
                raise LakeError(f"{_where(change)}: a D of a row the table does not hold")
            return
        if change.op == "U" and not _pair(previous, change):
            raise LakeError(f"{_where(change)}: a U of a table without a key, not after its D")
        self.serial += 1
        self.rows[self.serial] = self._filled(change, self.deleted if change.op == "U" else None)

    def _ident(self, change: FileRow) -> Any:
        if not self.key:
            self.serial += 1
            return self.serial
        missing = [k for k in self.key if k not in change.row]
        if missing:
            raise LakeError(f"{_where(change)}: no key column {missing}")
        return tuple(_hashable(change.row[k]) for k in self.key)

    def result(self) -> list[Row]:
        rows = list(self.rows.values())
        names = self.key or tuple(sorted({c for r in rows for c in r}))
        return sorted(rows, key=lambda r: tuple(_sortable(r.get(c)) for c in names))


def _pair(previous: FileRow | None, change: FileRow) -> bool:
    """The README's update that changes the key: a D, then next in the same file the U
    of the new row (same commit)."""
    return (
        previous is not None
        and previous.op == "D"
        and previous.file == change.file
        and previous.index == change.index - 1
        and previous.commit == change.commit
    )


def _check_image(change: FileRow, current: Row) -> None:
    """A D row's values, where it has them, are those of the row it deletes."""
    for column, value in change.row.items():
        have = current.get(column)
        if value is NOT_SENT:
            continue
        if value is not None and have is not None and value != have:
            raise LakeError(
                f"{_where(change)}: the D row has {column}={value!r}, the row it deletes {have!r}"
            )


def _same(image: Row, row: Row) -> bool:
    known = all(v is NOT_SENT or row.get(c) == v for c, v in image.items())
    return known and set(image) == set(row)


def _where(change: FileRow) -> str:
    return f"{change.file} row {change.index} ({change.op or 'no Op'})"


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _sortable(value: Any) -> tuple[bool, str, Any]:
    """None first, then values of one type in their order (types apart by name)."""
    if value is None:
        return (False, "", 0)
    return (True, type(value).__name__, _hashable(value))
