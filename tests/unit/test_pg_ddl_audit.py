"""PostgreSQL DDL capture without a server: audit rows into DDL changes, relation
markers and row messages from the decoder, the engine's schema follower, and the
MySQL-target order of a DDL transaction."""

from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from opendms.changes import Change, ColumnChange, Op, TableChange, Transaction
from opendms.endpoints.apply.runs import ddl_first
from opendms.endpoints.postgres.ddl import rule_rows
from opendms.endpoints.postgres.ddlaudit import AuditReader, column_changes
from opendms.endpoints.postgres.pgoutput import Decoder
from opendms.engine.follow import SchemaFollower
from opendms.engine.tableddl import new_table_rules
from opendms.errors import DataError, EndpointError
from opendms.mapping import parse_table_mappings
from opendms.model import Column, Kind, T, Table
from tests.unit.test_pgoutput import _s, begin, commit, relation, tuple_data

INT = [1, "id", "integer", True, "b", []]
NAME = [2, "name", "text", False, "b", []]
PRICE = [3, "price", "numeric(12,2)", False, "b", []]


def _desc(name: str, *columns: list[Any], schema: str = "public") -> dict[str, Any]:
    return {"schema": schema, "name": name, "columns": list(columns), "key": ["id"]}


def _audit(before: Any, after: Any, published: list[str] | None = None, note: str = "") -> Change:
    row = {
        "c_key": "1",
        "c_tag": "ALTER TABLE",
        "c_oid": "16400",
        "c_before": json.dumps(before) if before is not None else None,
        "c_after": json.dumps(after) if after is not None else None,
        "c_published": json.dumps(published or []),
        "c_note": note or None,
        "c_ddlqry": "…",
    }
    return Change(Op.INSERT, "public", "opendms_ddl_audit", tuple(row), tuple(row.values()))


READER = AuditReader("public", "opendms_t")


def test_column_changes_by_attribute_number() -> None:
    before = [INT, NAME, PRICE]
    after = [INT, [2, "title", "text", False, "b", []], [3, "price", "bigint", True, "b", []]]
    after.append([5, "extra", "numeric(10,3)", False, "b", []])
    assert column_changes(before, after) == (
        ColumnChange("rename", "name", new_name="title"),
        ColumnChange("alter_type", "price", T(Kind.INT64), nullable=False),
        ColumnChange("add", "extra", T(Kind.DECIMAL, precision=10, scale=3)),
    )
    # dropped, and a column of the same name added back: a drop then an add
    readded = [INT, [4, "name", "character varying(5)", False, "b", []], PRICE]
    assert column_changes(before, readded) == (
        ColumnChange("drop", "name"),
        ColumnChange("add", "name", T(Kind.STRING, length=5)),
    )
    # a nullability change alone is not followed (as in DMS)
    assert column_changes([INT, NAME], [INT, [2, "name", "text", True, "b", []]]) == ()


def test_audit_rows_become_ddl_changes() -> None:
    before, after = _desc("t", INT, NAME), _desc("u", INT, NAME, PRICE)
    renamed, added = READER.changes(_audit(before, after))
    assert renamed == Change(
        Op.DDL, "public", "t", table_ddl=TableChange("rename", new_schema="public", new_name="u")
    )
    assert (added.table, added.ddl[0].action, added.ddl[0].column) == ("u", "add", "price")
    [dropped] = READER.changes(_audit(before, None))
    assert (dropped.table, dropped.table_ddl) == ("t", TableChange("drop"))
    delete = Change(Op.DELETE, "public", "opendms_ddl_audit", (), (), ("c_key",), ("1",))
    assert READER.changes(delete) == []


def test_a_table_published_for_this_task_is_created_and_gets_its_rows() -> None:
    reader = AuditReader("public", "opendms_t")
    [created] = reader.changes(_audit(None, _desc("new", INT, NAME), ["opendms_t", "other"]))
    assert created.table_ddl is not None and created.table_ddl.action == "create"
    table = created.table_ddl.table
    assert table == Table(
        "public",
        "new",
        (Column("id", T(Kind.INT32), False), Column("name", T(Kind.STRING))),
        ("id",),
    )
    row = reader.row("opendms_row:16400", '["1", null]')
    assert row == Change(Op.INSERT, "public", "new", ("id", "name"), ("1", None))
    assert reader.row("opendms_row:99", "[]") is None  # another task's table
    assert reader.row("opendms_row:x", "[]") is None
    with pytest.raises(EndpointError, match=r"public\.new: row message of another shape"):
        reader.row("opendms_row:16400", '["1"]')


def test_a_table_not_published_is_a_column_marker_or_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        [marker] = READER.changes(
            _audit(
                None,
                _desc("bare", INT),
                note="opendms_t: no primary key or REPLICA "
                "IDENTITY FULL (not captured until it has one); other: x",
            )
        )
    assert marker.stat == "" and marker.table_ddl is not None
    assert marker.table_ddl.action == "columns"
    assert "public.bare matches the selection rules but is not captured: no primary key" in (
        caplog.text
    )
    assert "other" not in caplog.text


def test_a_broken_audit_row_is_a_clear_error() -> None:
    bad = Change(Op.INSERT, "public", "opendms_ddl_audit", ("c_after",), ("{not json",))
    with pytest.raises(EndpointError, match="cannot read a DDL audit row"):
        READER.changes(bad)


def test_selection_rules_become_anchored_regexes() -> None:
    mappings = parse_table_mappings(
        {
            "rules": [
                _rule("1", "include", "sales%", "order_[0-9]%"),
                _rule("2", "exclude", "sales%", "order[_]tmp"),
                _rule("3", "explicit", "a.b", "c.d"),
            ]
        }
    )
    rows = rule_rows("pub", new_table_rules(mappings, [], False))
    assert rows[0] == ("pub", "^$", "^$", True)  # marks the publication as a user
    matches = [
        (bool(re.match(s, schema)) and bool(re.match(t, name)), exclude)
        for _, s, t, exclude in rows[1:]
        for schema, name in [("sales_eu", "order_1x"), ("a.b", "c.d"), ("axb", "cxd")]
    ]
    assert matches == [
        (True, False),
        (False, False),
        (False, False),
        (False, True),
        (False, True),
        (False, True),
        (False, False),
        (True, False),
        (False, False),
    ]


def test_a_target_in_the_source_database_is_never_captured_back() -> None:
    mappings = parse_table_mappings({"rules": [_rule("1", "include", "public", "%")]})
    plan = mappings.plan(Table("public", "t", (Column("id", T(Kind.INT32)),)))
    copy = replace(plan, target=Table("public", "t.copy", ()))
    rules = new_table_rules(mappings, [copy], True)
    assert rules[1:] == [("public", r"t\.copy", True), ("opendms", ".*", True)]
    assert new_table_rules(mappings, [copy], False) == rules[:1]


def _rule(rid: str, action: str, schema: str, table: str) -> dict[str, Any]:
    return {
        "rule-type": "selection",
        "rule-id": rid,
        "rule-name": rid,
        "object-locator": {"schema-name": schema, "table-name": table},
        "rule-action": action,
    }


# -- the decoder ----------------------------------------------------------------------


def test_relation_messages_and_row_messages_go_into_the_transaction() -> None:
    d = Decoder(relation_markers=True)
    d.feed(begin(1))
    d.feed(relation(7, "public", "t", [("id", True), ("name", False)]))
    message = _s("opendms_row:16400") + struct.pack("!I", 5) + b'["1"]'
    d.feed(b"M" + bytes([1]) + struct.pack("!Q", 5) + message)  # transactional
    d.feed(b"M" + bytes([0]) + struct.pack("!Q", 5) + message)  # not: ignored
    d.feed(b"I" + struct.pack("!I", 7) + b"N" + tuple_data([1, "a"]))
    txn = d.feed(commit(64, 0))
    assert txn is not None
    marker, row, insert = txn.changes
    assert (marker.op, marker.stat, marker.columns) == (Op.DDL, "", ("id", "name"))
    assert marker.values == ((23, -1), (23, -1))
    assert marker.table_ddl == TableChange("columns")
    assert (row.schema, row.table, row.values, row.stat) == (
        "",
        "opendms_row:16400",
        ('["1"]',),
        "",
    )
    assert insert.values == ("1", "a")
    plain = Decoder()  # without markers: relation messages give no change
    plain.feed(begin(2))
    plain.feed(relation(7, "public", "t", [("id", True)]))
    done = plain.feed(commit(128, 0))
    assert done is not None and done.changes == []


# -- the schema follower ---------------------------------------------------------------

ITEMS = Table(
    "public",
    "items",
    (Column("id", T(Kind.INT32)), Column("v", T(Kind.DECIMAL, precision=12, scale=2))),
    ("id",),
)


def _txn(*changes: Change) -> Transaction:
    from datetime import UTC, datetime

    from opendms.changes import LSN

    return Transaction(1, datetime(2024, 1, 1, tzinfo=UTC), LSN(1), list(changes))


def _follower(convert: bool = True, wanted: bool = True) -> SchemaFollower:
    from opendms.mapping import TablePlan

    def plan_new(table: Table) -> TablePlan | None:
        mappings = parse_table_mappings({"rules": [_rule("1", "include", "%", "%")]})
        return mappings.plan(table) if wanted else None

    from opendms.endpoints.postgres.textvalues import converter

    return SchemaFollower(
        {("public", "items"): ITEMS}, {}, plan_new, converter if convert else None
    )


def test_values_are_read_with_the_column_types_of_their_moment() -> None:
    retype = ColumnChange("alter_type", "v", T(Kind.INT64))
    txn = _follower()(
        _txn(
            Change(Op.INSERT, "public", "items", ("id", "v"), ("1", "1.26")),
            Change(Op.DDL, "public", "items", ddl=(retype,)),
            Change(Op.INSERT, "public", "items", ("id", "v"), ("2", "7")),
            Change(Op.DDL, "public", "items", ddl=(ColumnChange("rename", "v", new_name="w"),)),
            Change(Op.UPDATE, "public", "items", ("id", "w"), ("2", "8"), ("id",), ("2",)),
        )
    )
    assert txn.changes[0].values == (1, Decimal("1.26"))
    assert txn.changes[2].values == (2, 7) and txn.changes[4].values == (2, 8)
    with pytest.raises(DataError, match="column w"):
        _follower()(_txn(Change(Op.INSERT, "public", "items", ("id", "w"), ("1", "x"))))


def test_relation_columns_that_differ_become_column_ddl(caplog: pytest.LogCaptureFixture) -> None:
    follower = _follower(convert=False)
    sent = Table(
        "public",
        "items",
        (Column("id", T(Kind.INT32)), Column("v", T(Kind.INT64)), Column("new", T(Kind.BOOL))),
    )
    marker = Change(Op.DDL, "public", "items", table_ddl=TableChange("columns", sent), stat="")
    with caplog.at_level(logging.WARNING):
        [ddl] = follower(_txn(marker)).changes
    assert ddl.stat is None and ddl.ddl == (
        ColumnChange("alter_type", "v", T(Kind.INT64)),
        ColumnChange("add", "new", T(Kind.BOOL)),
    )
    assert follower(_txn(marker)).changes == []  # agrees now: dropped
    gone = Table("public", "items", (Column("id", T(Kind.INT32)),))
    with caplog.at_level(logging.WARNING):
        follower(_txn(Change(Op.DDL, "public", "items", table_ddl=TableChange("columns", gone))))
    assert "column v is no longer sent by the source" in caplog.text
    other = Change(Op.DDL, "public", "other", table_ddl=TableChange("columns", gone))
    assert follower(_txn(other)).changes == []  # not captured


def test_created_renamed_and_dropped_tables() -> None:
    new = Table("public", "new", (Column("id", T(Kind.INT32)),), ("id",))
    create = Change(Op.DDL, "public", "new", table_ddl=TableChange("create", new))
    assert _follower(wanted=False)(_txn(create)).changes == []
    follower = _follower()
    rename = TableChange("rename", new_schema="s2", new_name="renamed")
    txn = follower(
        _txn(
            create,
            Change(Op.INSERT, "public", "new", ("id",), ("5",)),
            Change(Op.DDL, "public", "new", table_ddl=rename),
            Change(Op.INSERT, "s2", "renamed", ("id",), ("6",)),
            Change(Op.DDL, "public", "items", table_ddl=TableChange("drop")),
            Change(Op.DDL, "public", "items", table_ddl=TableChange("drop")),  # gone already
        )
    )
    assert [c.values for c in txn.changes if c.op is Op.INSERT] == [(5,), (6,)]
    assert len(txn.changes) == 5
    assert set(follower.tables) == {("s2", "renamed")}
    assert ("public", "new") in follower.created


# -- a DDL transaction on a target whose DDL commits at once --------------------------


def test_ddl_first_names_rows_as_the_ddl_left_them() -> None:
    changes = [
        Change(Op.UPDATE, "s", "t", ("id", "a", "b"), (1, 2, 3), ("id",), (1,)),
        Change(Op.DDL, "s", "t", ddl=(ColumnChange("rename", "a", new_name="c"),)),
        Change(Op.INSERT, "s", "t", ("id", "c", "b"), (2, 4, 5)),
        Change(Op.DDL, "s", "t", ddl=(ColumnChange("drop", "b"),)),
        Change(Op.INSERT, "s", "u", ("id", "a", "b"), (3, 6, 7)),  # another table
        Change(Op.DELETE, "s", "t", (), (), ("id",), (2,)),
    ]
    out = ddl_first(changes)
    assert [c.op for c in out] == [Op.DDL, Op.DDL, Op.UPDATE, Op.INSERT, Op.INSERT, Op.DELETE]
    assert (out[2].columns, out[2].values) == (("id", "c"), (1, 2))
    assert (out[3].columns, out[3].values) == (("id", "c"), (2, 4))
    assert out[4] is changes[4] and out[5] is changes[5]


def test_the_capture_rewrites_a_transaction_for_the_engine() -> None:
    """Audit rows become DDL, row messages inserts (only of a table created in the same
    transaction), relation markers carry their column types, other messages go."""
    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.postgres.changesource import PgChangeSource

    capture = PgChangeSource(EndpointURL.parse("postgresql://u@localhost/db"), "t")
    capture.types = {(23, -1): T(Kind.INT32)}  # no catalog lookup needed
    marker = Change(
        Op.DDL, "public", "new", ("id",), ((23, -1),), table_ddl=TableChange("columns"), stat=""
    )
    created = _audit(None, _desc("new", INT), [capture.publication])
    row = Change(Op.INSERT, "", "opendms_row:16400", values=('["7"]',), stat="")
    other = Change(Op.INSERT, "", "opendms_other", values=("x",), stat="")
    txn = capture.rewrite(_txn(created, marker, row, other))
    create, typed, insert = txn.changes
    assert create.table_ddl is not None and create.table_ddl.action == "create"
    assert typed.table_ddl == TableChange(
        "columns", Table("public", "new", (Column("id", T(Kind.INT32)),))
    )
    assert (insert.op, insert.table, insert.values) == (Op.INSERT, "new", ("7",))
    assert capture.rewrite(_txn(row)).changes == []  # not in the creating transaction
    plain = _txn(Change(Op.INSERT, "public", "t", ("id",), ("1",)))
    assert capture.rewrite(plain) is plain
