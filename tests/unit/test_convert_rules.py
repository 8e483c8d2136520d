"""The pure rules of schema conversion: domain checks on a column, view dependency order,
foreign-key actions InnoDB refuses, and the failed status in the script."""

from __future__ import annotations

from opendms.convert.base import Conversion, Phase, Statement
from opendms.convert.catalog import dialect_for
from opendms.convert.ddl import generate
from opendms.convert.views import dependency_order
from opendms.endpoints.postgres.schemacatalog import on_column
from opendms.endpoints.schemaobjects import (
    ColumnDef,
    ForeignKey,
    Item,
    SourceCatalog,
    Status,
    TableDef,
    ViewDef,
)
from opendms.model import Kind, T


def test_domain_check_names_the_column_not_value() -> None:
    check = "((VALUE >= 1901) AND (\"VALUE\" <> 'VALUE') AND (value_x > 0))"
    assert on_column(check, 'rel"year') == (
        '(("rel""year" >= 1901) AND ("VALUE" <> \'VALUE\') AND (value_x > 0))'
    )


def test_views_come_after_the_views_they_read() -> None:
    views = [
        ViewDef("s", "a", "SELECT * FROM s.c"),
        ViewDef("s", "b", "SELECT * FROM t"),
        ViewDef("s", "c", "SELECT * FROM b JOIN t ON true"),
    ]
    assert [v.name for v in dependency_order(views, dialect_for("mysql"))] == ["b", "c", "a"]


def _fk_table(nullable: bool, on_delete: str) -> TableDef:
    cols = [
        ColumnDef("id", "int", T(Kind.INT32), False),
        ColumnDef("p", "int", T(Kind.INT32), nullable),
    ]
    fk = ForeignKey("fk", ("p",), "s", "parent", ("id",), on_delete, "SET NULL")
    return TableDef("s", "child", cols, ("id",), foreign_keys=[fk])


def test_set_null_on_not_null_becomes_no_action_on_mysql_only() -> None:
    parent = TableDef("s", "parent", [ColumnDef("id", "int", T(Kind.INT32), False)], ("id",))
    for nullable, expected in (
        (False, "ON DELETE NO ACTION ON UPDATE NO ACTION"),
        (True, "ON DELETE SET NULL ON UPDATE SET NULL"),
    ):
        catalog = SourceCatalog(
            "postgresql", "pg", ["s"], [parent, _fk_table(nullable, "SET NULL")]
        )
        ddl = " ".join(generate(catalog, "mysql").ddl())
        assert expected in ddl
    catalog = SourceCatalog("postgresql", "pg", ["s"], [parent, _fk_table(False, "SET NULL")])
    assert "ON DELETE SET NULL" in " ".join(generate(catalog, "postgresql").ddl())


def test_refused_statements_are_commented_out() -> None:
    item = Item("tables", "s", "t")
    conversion = Conversion("postgresql", "mysql", [item])
    conversion.statements = [
        Statement(Phase.TABLES, "CREATE TABLE t (\n  a INT\n)", ("s", "t"), item),
        Statement(Phase.TABLES, "CREATE TABLE u (a INT)"),
    ]
    conversion.refused[0] = "Row size too large"
    item.fail("the mysql target refused it: Row size too large")
    assert item.status is Status.FAILED
    assert conversion.script() == (
        "-- FAILED on the target: Row size too large\n"
        "-- CREATE TABLE t (\n--   a INT\n-- );\n\n"
        "CREATE TABLE u (a INT);\n\n"
    )
