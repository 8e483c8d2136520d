"""Schema conversion names no engine (issue 11): it asks each engine's DDL dialect
(``Engine.ddl_dialect()``) and source catalog (``Engine.source_catalog()``) instead.

The source of ``opendms.convert`` is read with :mod:`ast`: no string literal is an engine
name (so none is compared, used as a key or passed as an argument), no message spells an
engine (messages take the dialect's ``name`` or ``title``), and no module imports an
engine package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import opendms.convert
import opendms.endpoints
from opendms.convert.catalog import dialect_for, dialects
from opendms.errors import ConfigError

CONVERT = Path(opendms.convert.__file__).parent
ENDPOINTS = Path(opendms.endpoints.__file__).parent
NAMES = frozenset({"postgresql", "postgres", "mysql", "mariadb", "sqlite"})
WORDS = ("postgres", "mysql", "mariadb", "sqlite", "innodb")
ENGINE_PACKAGES = frozenset(p.name for p in ENDPOINTS.iterdir() if (p / "engine.py").is_file())
MODULES = sorted(CONVERT.glob("*.py"))


def _literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of the string literals of ``source`` except docstrings (bare string
    statements)."""
    tree = ast.parse(source)
    bare = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in bare
    ]


def name_literals(source: str) -> list[str]:
    """``line: literal`` of every literal that is an engine name."""
    return [f"{line}: {text!r}" for line, text in _literals(source) if text.lower() in NAMES]


def spelled_engines(source: str) -> list[str]:
    """``line: literal`` of every literal (a message) with an engine's name in it."""
    found = _literals(source)
    return [f"{line}: {text!r}" for line, text in found if any(w in text.lower() for w in WORDS)]


def engine_imports(source: str) -> list[str]:
    """Modules of engine packages (``opendms.endpoints.<engine>...``) that ``source`` imports."""
    out: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        parts = [n.split(".") for n in names]
        out += [".".join(p) for p in parts if p[:2] == ["opendms", "endpoints"] and len(p) > 2]
    return [m for m in out if m.split(".")[2] in ENGINE_PACKAGES]


def test_the_checks_find_what_they_look_for() -> None:
    source = (
        'if target == "mysql":\n'
        '    msg = "MySQL refuses it"\n'
        'KEYS = {"sqlite": 1}\n'
        "from opendms.endpoints.postgres.types import to_pg\n"
        "from opendms.endpoints import sqlite\n"
        "from opendms.endpoints.base import EndpointURL\n"
        'def f() -> None:\n    """A docstring may say PostgreSQL."""\n'
    )
    assert name_literals(source) == ["1: 'mysql'", "3: 'sqlite'"]
    assert spelled_engines(source) == ["1: 'mysql'", "2: 'MySQL refuses it'", "3: 'sqlite'"]
    assert engine_imports(source) == [
        "opendms.endpoints.postgres.types",
        "opendms.endpoints.postgres.types.to_pg",
        "opendms.endpoints.sqlite",
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_convert_compares_no_engine_name(path: Path) -> None:
    assert name_literals(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_convert_messages_name_engines_through_dialects(path: Path) -> None:
    assert spelled_engines(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_convert_imports_no_engine_package(path: Path) -> None:
    assert engine_imports(path.read_text(encoding="utf-8")) == []


def test_dialects_come_from_the_registry() -> None:
    assert [d.name for d in dialects()] == ["postgresql", "mysql", "sqlite"]
    assert dialect_for("postgres") is dialect_for("postgresql")
    assert dialect_for("MariaDB") is dialect_for("mysql")
    with pytest.raises(ConfigError, match=r"unknown target engine 'lake' \(use postgresql, mysql"):
        dialect_for("lake")
