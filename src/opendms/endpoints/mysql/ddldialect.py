"""MySQL/MariaDB as a schema conversion source and target (``Engine.ddl_dialect``):
databases as schemas, backquoted names, InnoDB tables in utf8mb4, enums inlined in their
columns, AUTO_INCREMENT keys, inline comments, and what InnoDB refuses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.generators.mysql import MySQLGenerator

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.ddldialect import Comments, DdlDialect, Runner
from opendms.endpoints.mysql.conn import connect
from opendms.endpoints.mysql.types import KEY_VARCHAR, MAX_VARCHAR, to_mysql
from opendms.endpoints.schemaobjects import ColumnDef, ForeignKey, TableDef
from opendms.model import ColumnType, Kind

__all__ = ["DIALECT", "OpendmsMySQL"]


def _regexp(gen: MySQLGenerator, node: exp.RegexpLike) -> str:
    return f"{gen.sql(node, 'this')} REGEXP {gen.sql(node, 'expression')}"


class _Generator(MySQLGenerator):
    TRANSFORMS = {**MySQLGenerator.TRANSFORMS, exp.RegexpLike: _regexp}


class OpendmsMySQL(MySQL):
    """MySQL as both MySQL 8 and MariaDB take it: ``x REGEXP p``, not ``REGEXP_LIKE``."""

    Generator = _Generator


def _column_type(ctype: ColumnType, in_key: bool, same_engine: bool) -> str:
    return to_mysql(ctype, in_key)


def _type_note(col: ColumnDef, sql: str, in_key: bool) -> str:
    """What the MySQL type of a column from another engine changes ("": nothing)."""
    ctype = col.type
    if ctype.kind is Kind.TIMESTAMPTZ:
        return f"{col.native} stored as {sql} without time zone (values in UTC)"
    if ctype.kind is Kind.DECIMAL and (ctype.precision or 66) > 65:
        return f"{col.native} narrowed to {sql}; wider values are rejected"
    long_text = ctype.kind is Kind.STRING and (ctype.length or MAX_VARCHAR + 1) > MAX_VARCHAR
    if long_text and in_key:
        return f"{col.native} in a key limited to {sql}"
    return ""


def _fk_actions(table: TableDef, fk: ForeignKey) -> tuple[str, str, list[str]]:
    """InnoDB has no SET DEFAULT and refuses SET NULL on a NOT NULL column."""
    not_null = [c for c in fk.columns if not table.column(c).nullable]
    actions: list[str] = []
    notes: list[str] = []
    for when, action in (("DELETE", fk.on_delete), ("UPDATE", fk.on_update)):
        if action == "SET DEFAULT":
            notes.append(f"ON {when} SET DEFAULT is not supported by InnoDB; NO ACTION")
            action = "NO ACTION"
        elif action == "SET NULL" and not_null:
            notes.append(
                f"ON {when} SET NULL on NOT NULL column {', '.join(not_null)} became NO "
                f"ACTION: the source refuses such a {when.lower()} too (a NOT NULL "
                "violation), InnoDB refuses the constraint itself"
            )
            action = "NO ACTION"
        actions.append(action)
    return actions[0], actions[1], notes


@contextmanager
def _session(url: EndpointURL, throwaway: bool, drop: list[str]) -> Iterator[Runner]:
    """Autocommit (DDL commits anyway); the throwaway databases in ``drop`` are dropped at
    the end."""
    conn = connect(url)

    def run(sql: str) -> None:
        with conn.cursor() as cur:
            cur.execute(sql)

    try:
        yield run
    finally:
        for name in drop:
            run(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


DIALECT = DdlDialect(
    name="mysql",
    title="MySQL",
    sqlglot=OpendmsMySQL,
    session=_session,
    column_type=_column_type,
    quote="`",
    backslash_escapes=True,
    name_limit=64,
    schema_keyword="DATABASE",
    database_schema=True,
    type_note=_type_note,
    enum_note="inlined as ENUM(...) in the columns that use it",
    identity="AUTO_INCREMENT",
    identity_name="AUTO_INCREMENT",
    identity_key="InnoDB's AUTO_INCREMENT",
    generated_not_null=False,  # MariaDB takes no NOT NULL on a generated column
    expression_default_types=frozenset({"LONGTEXT", "LONGBLOB", "JSON"}),  # MySQL 8's rule
    current_date="(CURRENT_DATE)",
    current_time="(CURRENT_TIME)",
    timestamp_precision=True,
    on_update_timestamp=True,
    table_options=" ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    comments=Comments.INLINE,
    fk_actions=_fk_actions,
    volatile_checks=False,
    json_index=False,
    index_kinds=frozenset({"fulltext", "spatial"}),
    index_prefix=255,
    prefix_over=KEY_VARCHAR,
    builtins_shadow=True,
    string_agg_note="string aggregation ({sql}) became GROUP_CONCAT: results longer than "
    "group_concat_max_len (1024 bytes by default on MySQL) are cut",
    search_index="a FULLTEXT index",
    sequence_note="MariaDB 10.3+ also has CREATE SEQUENCE",
    routine_language="a MySQL stored function",
    trigger_advice="MySQL a CREATE TRIGGER with the body rewritten",
)
"""MySQL's and MariaDB's DDL dialect."""
