"""QUERY events: what a statement means to the change stream.

QUERY events carry transaction control (BEGIN, COMMIT...) and DDL. Only what
changes a captured table's rows or columns matters: TRUNCATE TABLE and the
column actions of ALTER TABLE, parsed here by a small tokenizer (:func:`classify`);
a column definition's type goes through the catalog's mapping (:func:`column_type`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opendms.changes import ColumnChange
from opendms.endpoints.mysql.types import from_mysql
from opendms.model import ColumnType


@dataclass(frozen=True)
class Statement:
    """What a QUERY event means to the change stream."""

    kind: str  # begin, commit, rollback, savepoint, xa, truncate, alter, other
    schema: str = ""
    table: str = ""
    ddl: tuple[ColumnChange, ...] = ()


@dataclass(frozen=True)
class _Tok:
    kind: str  # id (quoted identifier), str, word, punct
    text: str

    @property
    def up(self) -> str:
        return self.text.upper() if self.kind == "word" else ""

    @property
    def ident(self) -> bool:
        return self.kind in ("id", "word")


_TOKEN = re.compile(
    r"""(?P<skip>\s+|--[ \t][^\n]*|--$|\#[^\n]*|/\*M?!\d*|\*/|/\*.*?\*/)
      | (?P<id>`(?:[^`]|``)*`)
      | (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*")
      | (?P<word>[A-Za-z0-9_$\u0080-\uffff]+)
      | (?P<punct>.)""",
    re.S | re.X | re.M,
)
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _unquote(text: str) -> str:
    quote, body = text[0], text[1:-1]
    body = body.replace(quote * 2, quote)
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.S)


def tokenize(sql: str) -> list[_Tok]:
    """SQL tokens without comments (executable /*!...*/ comments keep their content)."""
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup or "punct"
        if kind == "skip":
            continue
        text = m.group()
        if kind == "id":
            text = text[1:-1].replace("``", "`")
        elif kind == "str":
            text = _unquote(text)
        out.append(_Tok(kind, text))
    return out


_HEAD = re.compile(r"\s*(?:(?:/\*(?!M?!).*?\*/|/\*M?!\d*)\s*)*([A-Za-z]+)", re.S)


def classify(sql: str, db: str) -> Statement:
    """The meaning of one QUERY event's statement (``db``: its default database)."""
    m = _HEAD.match(sql)
    first = m.group(1).upper() if m else ""
    if first in ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "XA"):
        return Statement(first.lower() if first != "RELEASE" else "savepoint")
    if first == "ROLLBACK":
        return Statement("savepoint" if re.search(r"\bTO\b", sql, re.I) else "rollback")
    if first == "TRUNCATE":
        return _truncate(tokenize(sql), db)
    if first == "ALTER":
        return _alter(tokenize(sql), db)
    return Statement("other")


def _table_name(toks: list[_Tok], i: int, db: str) -> tuple[str, str, int]:
    """``[db.]name`` at ``toks[i]``: (schema, table, index after it)."""
    if i + 2 < len(toks) and toks[i + 1].text == "." and toks[i + 1].kind == "punct":
        return toks[i].text, toks[i + 2].text, i + 3
    return db, toks[i].text if i < len(toks) else "", i + 1


def _truncate(toks: list[_Tok], db: str) -> Statement:
    i = 2 if len(toks) > 1 and toks[1].up == "TABLE" else 1
    if i >= len(toks) or not toks[i].ident:
        return Statement("other")
    schema, table, _ = _table_name(toks, i, db)
    return Statement("truncate", schema, table)


def _alter(toks: list[_Tok], db: str) -> Statement:
    i = 1
    while i < len(toks) and toks[i].up in ("ONLINE", "OFFLINE", "IGNORE"):
        i += 1
    if i >= len(toks) or toks[i].up != "TABLE":
        return Statement("other")
    i += 1
    if i + 1 < len(toks) and toks[i].up == "IF" and toks[i + 1].up == "EXISTS":
        i += 2
    schema, table, i = _table_name(toks, i, db)
    if i < len(toks) and toks[i].up == "WAIT":
        i += 2
    elif i < len(toks) and toks[i].up == "NOWAIT":
        i += 1
    changes: list[ColumnChange] = []
    for action in _split(toks[i:]):
        changes += _action(action)
    return Statement("alter", schema, table, tuple(changes))


def _split(toks: list[_Tok]) -> list[list[_Tok]]:
    """Split on commas outside parentheses."""
    parts: list[list[_Tok]] = [[]]
    depth = 0
    for tok in toks:
        if tok.kind == "punct" and tok.text in "()":
            depth += 1 if tok.text == "(" else -1
        if depth == 0 and tok.kind == "punct" and tok.text == ",":
            parts.append([])
        else:
            parts[-1].append(tok)
    return [p for p in parts if p]


_NOT_COLUMN = {
    "INDEX",
    "KEY",
    "CONSTRAINT",
    "PRIMARY",
    "UNIQUE",
    "FULLTEXT",
    "SPATIAL",
    "FOREIGN",
    "CHECK",
    "PERIOD",
    "SYSTEM",
    "PARTITION",
    "VECTOR",
    "DEFAULT",
}


def _after_column_word(toks: list[_Tok], i: int, *extra: str) -> int | None:
    """Index of the column name after ADD/DROP/MODIFY/CHANGE (None: not a column)."""
    if i < len(toks) and toks[i].up == "COLUMN":
        i += 1
    elif i < len(toks) and toks[i].kind == "word" and toks[i].up in _NOT_COLUMN:
        return None
    for word in extra:
        if i < len(toks) and toks[i].up == word:
            i += 1
    return i if i < len(toks) else None


def _action(toks: list[_Tok]) -> list[ColumnChange]:
    verb = toks[0].up
    if verb == "ADD":
        return _add(toks)
    if verb == "DROP":
        i = _after_column_word(toks, 1, "IF", "EXISTS")
        return [] if i is None else [ColumnChange("drop", toks[i].text)]
    if verb == "MODIFY":
        i = _after_column_word(toks, 1, "IF", "EXISTS")
        if i is None:
            return []
        ctype, nullable = column_type(toks[i + 1 :])
        return [ColumnChange("alter_type", toks[i].text, ctype, nullable=nullable)]
    if verb == "CHANGE":
        return _change(toks)
    if verb == "RENAME" and len(toks) >= 5 and toks[1].up == "COLUMN" and toks[3].up == "TO":
        return [ColumnChange("rename", toks[2].text, new_name=toks[4].text)]
    return []


def _add(toks: list[_Tok]) -> list[ColumnChange]:
    i = _after_column_word(toks, 1, "IF", "NOT", "EXISTS")
    if i is None:
        return []
    if toks[i].kind == "punct" and toks[i].text == "(":
        inner = toks[i + 1 : len(toks) - 1 if toks[-1].text == ")" else len(toks)]
        return [_added(part) for part in _split(inner)]
    return [_added(toks[i:])]


def _added(toks: list[_Tok]) -> ColumnChange:
    ctype, nullable = column_type(toks[1:])
    return ColumnChange("add", toks[0].text, ctype, nullable=nullable)


def _change(toks: list[_Tok]) -> list[ColumnChange]:
    i = _after_column_word(toks, 1, "IF", "EXISTS")
    if i is None or i + 1 >= len(toks):
        return []
    old, new = toks[i].text, toks[i + 1].text
    ctype, nullable = column_type(toks[i + 2 :])
    out = [ColumnChange("rename", old, new_name=new)] if old != new else []
    return [*out, ColumnChange("alter_type", new, ctype, nullable=nullable)]


_TWO_WORD_TYPES = {
    ("DOUBLE", "PRECISION"): "double",
    ("CHARACTER", "VARYING"): "varchar",
    ("CHAR", "VARYING"): "varchar",
    ("NATIONAL", "CHAR"): "char",
    ("NATIONAL", "CHARACTER"): "char",
    ("NATIONAL", "VARCHAR"): "varchar",
    ("NCHAR", "VARCHAR"): "varchar",
    ("LONG", "VARCHAR"): "mediumtext",
    ("LONG", "VARBINARY"): "mediumblob",
}
_TYPE_ALIASES = {
    "integer": "int",
    "int4": "int",
    "int1": "tinyint",
    "int2": "smallint",
    "int3": "mediumint",
    "middleint": "mediumint",
    "int8": "bigint",
    "dec": "decimal",
    "numeric": "decimal",
    "fixed": "decimal",
    "number": "decimal",
    "real": "double",
    "float8": "double",
    "float4": "float",
    "character": "char",
    "nchar": "char",
    "nvarchar": "varchar",
    "varchar2": "varchar",
    "bool": "tinyint",
    "boolean": "tinyint",
    "long": "mediumtext",
    "clob": "longtext",
    "serial": "bigint",
}
_BINARY_OF = {
    "char": "binary",
    "varchar": "varbinary",
    "tinytext": "tinyblob",
    "text": "blob",
    "mediumtext": "mediumblob",
    "longtext": "longblob",
}


def column_type(toks: list[_Tok]) -> tuple[ColumnType, bool]:
    """(canonical type, nullable) of a column definition's tokens (type first),
    through the same mapping as the catalog (types.from_mysql)."""
    if not toks:
        raise ValueError("a column definition without a type")
    name, i = toks[0].text.lower(), 1
    if i < len(toks) and (toks[0].up, toks[1].up) in _TWO_WORD_TYPES:
        name, i = _TWO_WORD_TYPES[(toks[0].up, toks[1].up)], 2
    serial = name == "serial"
    name = _TYPE_ALIASES.get(name, name)
    args: list[str] = []
    if i < len(toks) and toks[i].text == "(" and toks[i].kind == "punct":
        close = next((j for j in range(i, len(toks)) if toks[j].text == ")"), None)
        if close is None:  # StopIteration would escape the decoder's error contract
            raise ValueError("a column type with an unclosed parenthesis")
        args = [t.text for t in toks[i + 1 : close] if t.text != "," or t.kind != "punct"]
        i = close + 1
    unsigned, binary = serial, False
    words = [t.up for t in toks[i:]]
    unsigned = unsigned or "UNSIGNED" in words or "ZEROFILL" in words
    for j, word in enumerate(words[:-1]):
        if word in ("SET", "CHARSET") and words[j + 1] == "BINARY":
            binary = True
    name = _BINARY_OF.get(name, name) if binary else name
    if name == "float" and len(args) == 1 and args[0].isdigit() and int(args[0]) > 24:
        name, args = "double", []  # FLOAT(p) with p > 24 is a DOUBLE
    return _canonical(name, args, unsigned), _nullable(toks[i:]) and not serial


def _canonical(name: str, args: list[str], unsigned: bool) -> ColumnType:
    numbers = [int(a) for a in args if a.isdigit()]
    first = numbers[0] if numbers else None
    length = precision = scale = None
    if name in ("enum", "set"):
        full = name + "(" + ",".join("'" + a.replace("'", "''") + "'" for a in args) + ")"
    else:
        full = name + (f"({','.join(args)})" if args else "")
    if unsigned:
        full += " unsigned"
    if name in ("char", "binary"):
        length = first or 1
    elif name in ("varchar", "varbinary"):
        length = first
    elif name == "decimal":
        precision, scale = first or 10, numbers[1] if len(numbers) > 1 else 0
    elif name == "bit":
        precision = first or 1
    elif name in ("datetime", "timestamp", "time"):
        scale = first or 0
    return from_mysql(name, full, length, precision, scale, is_json=name == "json")


def _nullable(toks: list[_Tok]) -> bool:
    depth, prev = 0, ""
    for tok in toks:
        if tok.kind == "punct" and tok.text in "()":
            depth += 1 if tok.text == "(" else -1
            continue
        if depth == 0 and tok.kind == "word":
            if (prev, tok.up) in (("NOT", "NULL"), ("PRIMARY", "KEY")):
                return False
            prev = tok.up
    return True
