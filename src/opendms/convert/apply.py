"""Running converted DDL on a real target database.

Every statement the target refuses marks its report item ``failed`` with the target's error
(and is commented out in ``schema.sql``); the later statements of a table whose CREATE
failed are not tried. :func:`apply` creates the objects for real; :func:`trial` runs a copy
of the conversion in throwaway schemas (the target dialect's session says how: PostgreSQL
inside a transaction rolled back at the end, MySQL in throwaway databases dropped at the
end, SQLite in an in-memory database).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from opendms.convert.base import Conversion, Naming, Phase, Statement, schema_of
from opendms.convert.catalog import dialect_for, target_dialect
from opendms.endpoints.base import EndpointURL
from opendms.endpoints.ddldialect import DdlDialect, Runner
from opendms.endpoints.schemaobjects import Item
from opendms.errors import ConfigError, EndpointError


def apply(conversion: Conversion, target_url: str) -> None:
    """Creates the converted objects on ``target_url``, statement by statement."""
    url, dialect = _target(conversion, target_url)
    with dialect.session(url, False, []) as run:
        execute(conversion, run)


def trial(
    conversion: Conversion,
    regenerate: Callable[[Naming], Conversion],
    naming: Naming,
    schemas: list[str],
    target_url: str,
) -> None:
    """Runs the conversion in throwaway schemas on ``target_url`` and removes them.

    ``regenerate`` builds the same conversion with another :class:`Naming`; ``naming`` and
    ``schemas`` (the source schemas) are those ``conversion`` was made with. The failures
    are marked on ``conversion``'s items, with the real names in the messages.
    """
    url, dialect = _target(conversion, target_url)
    fake_naming, real_names = throwaway(naming, schemas, dialect)
    copy = regenerate(fake_naming)
    with dialect.session(url, True, list(real_names)) as run:
        execute(copy, run)
    for index, stmt in enumerate(copy.statements):
        if stmt.phase is Phase.SCHEMAS and index in copy.refused:
            raise EndpointError(
                str(url),
                f"cannot create a throwaway schema to try the DDL in: {copy.refused[index]}",
            )
    _copy_failures(copy, conversion, real_names)


def throwaway(
    naming: Naming, schemas: list[str], target: DdlDialect
) -> tuple[Naming, dict[str, str]]:
    """``naming`` with every target schema replaced by a fresh throwaway name
    (unchanged on targets without schemas); also the map throwaway name -> real name."""
    if not target.schema_keyword:
        return naming, {}
    real = {s: schema_of(naming, s, target) for s in schemas}
    wanted = sorted(set(real.values()) | {ts for ts, _ in naming.tables.values()})
    tag = uuid.uuid4().hex[:8]
    fake = {name: f"opendms_check_{tag}_{i}" for i, name in enumerate(wanted)}
    tables = {key: (fake[ts], tn) for key, (ts, tn) in naming.tables.items()}
    fake_naming = Naming(schemas={s: fake[r] for s, r in real.items()}, tables=tables)
    return fake_naming, {f: r for r, f in fake.items()}


def execute(conversion: Conversion, run: Runner) -> None:
    """Runs every statement in order; a refused one fails its item (see the module doc)."""
    failed_tables: set[tuple[str, str]] = set()
    for index, stmt in conversion.ordered():
        if stmt.phase is Phase.MANUAL:
            continue
        if stmt.table in failed_tables and stmt.phase is not Phase.TABLES:
            table = ".".join(stmt.table)
            _refuse(conversion, index, stmt, f"not tried: table {table} was not created")
            continue
        try:
            run(stmt.sql)
        except Exception as exc:  # any driver error: it is what the report shows
            _refuse(conversion, index, stmt, _first_line(exc))
            if stmt.phase is Phase.TABLES and stmt.table is not None:
                failed_tables.add(stmt.table)
                _fail_inline(conversion, stmt.table)


def _refuse(conversion: Conversion, index: int, stmt: Statement, error: str) -> None:
    conversion.refused[index] = error
    if stmt.item is not None:
        stmt.item.fail(f"the {conversion.target} target refused it: {error}")


def _fail_inline(conversion: Conversion, table: tuple[str, str]) -> None:
    """Constraints written inside a CREATE TABLE that failed (primary key, SQLite's)."""
    schema, name = table
    inline = {id(s.item) for s in conversion.statements if s.item is not None}
    for item in conversion.items:
        inside = item.kind == "constraints" and item.name.startswith(f"{name}.")
        if inside and item.schema == schema and id(item) not in inline:
            item.fail(f"not created: table {schema}.{name} was not created")


def _first_line(exc: Exception) -> str:
    args: tuple[Any, ...] = exc.args
    text = str(args[1]) if len(args) == 2 and isinstance(args[0], int) else str(exc)
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text[:300]


def _copy_failures(copy: Conversion, conversion: Conversion, real: dict[str, str]) -> None:
    def unmask(text: str) -> str:
        for fake, name in real.items():
            text = text.replace(f"{fake}.", f"{name}." if name else "").replace(fake, name)
        return text

    for mine, theirs in zip(conversion.items, copy.items, strict=True):
        if theirs.status is not mine.status:
            _copy_item(mine, theirs, unmask)
    for index, error in copy.refused.items():
        conversion.refused[index] = unmask(error)


def _copy_item(mine: Item, theirs: Item, unmask: Callable[[str], str]) -> None:
    new = theirs.messages[len(mine.messages) :]
    for message in new[:-1]:
        mine.messages.append(unmask(message))
    if new:
        mine.fail(unmask(new[-1]))


def _target(conversion: Conversion, target_url: str) -> tuple[EndpointURL, DdlDialect]:
    url = EndpointURL.parse(target_url)
    dialect = target_dialect(url)
    if dialect is not dialect_for(conversion.target):
        raise ConfigError(
            f"target {url}: a {dialect.name} database cannot run DDL converted for "
            f"{conversion.target}"
        )
    return url, dialect
