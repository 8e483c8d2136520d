"""DMS's LOB task settings: which columns are LOBs, the policy a task-settings document
gives, cutting values to LobMaxSize, and plans built with them; a table-settings rule's
lob-settings replacing them for its table."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from opendms.changes import UNCHANGED, Change, Op
from opendms.engine.lobcut import LobCutter
from opendms.errors import ConfigError, DataError
from opendms.mapping import parse_table_mappings
from opendms.mapping.expressions import Truncation, evaluate_outputs
from opendms.mapping.lobs import (
    WHOLE,
    LobPolicy,
    cut_value,
    is_lob,
    limited_value,
    lob_policy,
    truncatable,
    truncate_lobs,
)
from opendms.model import Column, ColumnType, Kind, Table, TableRef
from opendms.tasksettings import TaskSettings

KB = 1024
TEXT = ColumnType(Kind.STRING)
BYTES = ColumnType(Kind.BINARY)
JSON = ColumnType(Kind.JSON, binary_json=True)
INT = ColumnType(Kind.INT32)


# -- what is a LOB -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctype", "lob", "cuttable"),
    [
        (TEXT, True, True),  # PostgreSQL text / varchar, SQLite TEXT
        (BYTES, True, True),  # bytea, SQLite BLOB
        (JSON, True, False),  # json / jsonb / MySQL JSON: not cut
        (ColumnType(Kind.STRING, type_name="xml"), True, False),
        (ColumnType(Kind.STRING, native="longtext"), True, True),
        (ColumnType(Kind.BINARY, native="mediumblob"), True, True),
        (ColumnType(Kind.STRING, native="tinytext"), False, False),
        (ColumnType(Kind.BINARY, native="TINYBLOB"), False, False),
        (ColumnType(Kind.STRING, length=50), False, False),  # varchar(50)
        (ColumnType(Kind.BINARY, length=16), False, False),  # varbinary(16)
        (ColumnType(Kind.STRING, type_name="inet"), False, False),
        (ColumnType(Kind.BINARY, type_name="geometry"), False, False),
        (ColumnType(Kind.ARRAY, element=TEXT), False, False),
        (ColumnType(Kind.UUID), False, False),
        (ColumnType(Kind.ENUM, labels=("a",)), False, False),
        (INT, False, False),
    ],
)
def test_which_columns_are_lobs(ctype: ColumnType, lob: bool, cuttable: bool) -> None:
    assert is_lob(ctype) is lob
    assert truncatable(ctype) is cuttable


# -- the policy of a task-settings document ------------------------------------------


def _policy(target_metadata: dict[str, Any] | None) -> LobPolicy:
    document = {} if target_metadata is None else {"TargetMetadata": target_metadata}
    return lob_policy(TaskSettings.model_validate(document).TargetMetadata)


@pytest.mark.parametrize(
    ("given", "policy"),
    [
        (None, WHOLE),  # DMS's defaults (limited mode, 32 KB) do not act unless written
        ({}, WHOLE),
        ({"TargetSchema": "x"}, WHOLE),
        ({"LimitedSizeLobMode": True}, LobPolicy(max_bytes=32 * KB, max_kb=32)),
        ({"LobMaxSize": 64}, LobPolicy(max_bytes=64 * KB, max_kb=64)),
        ({"LimitedSizeLobMode": True, "LobMaxSize": 1}, LobPolicy(max_bytes=KB, max_kb=1)),
        ({"LimitedSizeLobMode": False, "LobMaxSize": 1}, WHOLE),
        ({"FullLobMode": True, "LimitedSizeLobMode": True, "LobMaxSize": 1}, WHOLE),
        ({"FullLobMode": True, "LobChunkSize": 64, "InlineLobMaxSize": 5}, WHOLE),
        ({"SupportLobs": True}, WHOLE),
        ({"SupportLobs": False}, LobPolicy(drop=True)),
        ({"SupportLobs": False, "LimitedSizeLobMode": True}, LobPolicy(drop=True)),
    ],
)
def test_only_the_settings_a_document_writes_act(
    given: dict[str, Any] | None, policy: LobPolicy
) -> None:
    assert _policy(given) == policy


def test_the_guide_example_values_act_as_in_dms() -> None:
    given = {
        "SupportLobs": True,
        "FullLobMode": False,
        "LobChunkSize": 64,
        "LimitedSizeLobMode": True,
        "LobMaxSize": 32,
        "InlineLobMaxSize": 0,
    }
    assert _policy(given) == LobPolicy(max_bytes=32 * KB, max_kb=32)


def test_lob_max_size_zero_in_limited_mode_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="LobMaxSize must be at least 1") as info:
        _policy({"LimitedSizeLobMode": True, "LobMaxSize": 0})
    assert info.value.path == "$.task_settings.TargetMetadata.LobMaxSize"
    assert _policy({"LimitedSizeLobMode": False, "LobMaxSize": 0}) == WHOLE


# -- cutting values ------------------------------------------------------------------


def test_text_is_cut_to_bytes_without_splitting_a_character() -> None:
    # "€" is 3 UTF-8 bytes, "😀" 4: a cut inside one of them keeps the text before it.
    assert cut_value("ab€cd", 4) == "ab"
    assert cut_value("ab€cd", 5) == "ab€"
    assert cut_value("ab€cd", 6) == "ab€c"
    assert cut_value("x😀", 4) == "x"
    assert cut_value("x😀", 5) == "x😀"
    value = "é" * KB  # 2 KB of UTF-8
    assert cut_value(value, KB) == "é" * 512
    assert cut_value("a" + value, KB) == "a" + "é" * 511  # 1023 bytes: the next needs 2


def test_values_of_exactly_the_limit_and_nulls_stay() -> None:
    text, data = "a" * KB, b"\x00" * KB
    assert cut_value(text, KB) is text
    assert cut_value(data, KB) is data
    assert cut_value(None, KB) is None
    assert cut_value(b"\x01\x02\x03", 2) == b"\x01\x02"
    assert cut_value("€" * 342, KB) == "€" * 341  # 1026 bytes -> 1023


def test_truncate_lobs_cuts_only_the_longer_values_and_names_their_rows() -> None:
    array = pa.array(["a" * 10, None, "€" * 4, "b" * 8, ""])
    cut, rows = truncate_lobs(array, 8)
    assert rows == [0, 2]
    assert cut.to_pylist() == ["a" * 8, None, "€€", "b" * 8, ""]
    binary = pa.array([b"\xff" * 9, None, b"\x00" * 8], pa.binary())
    cut, rows = truncate_lobs(binary, 8)
    assert (rows, cut.to_pylist()) == ([0], [b"\xff" * 8, None, b"\x00" * 8])
    large = pa.array(["xyz"], pa.large_string())
    cut, rows = truncate_lobs(large, 2)
    assert (rows, cut.type, cut.to_pylist()) == ([0], pa.large_string(), ["xy"])


def test_an_array_with_nothing_to_cut_is_returned_as_it_is() -> None:
    array = pa.array(["a", None, "bb"])
    cut, rows = truncate_lobs(array, 2)
    assert cut is array and rows == []
    nulls = pa.nulls(3, pa.string())
    assert truncate_lobs(nulls, 1) == (nulls, [])


def test_a_value_that_cannot_be_cut_is_a_data_error() -> None:
    doc = '{"a": "' + "x" * KB + '"}'
    with pytest.raises(DataError, match=r"column j: a value of 1033 bytes is longer") as info:
        limited_value(doc, KB, False, "j", "public.t")
    assert info.value.column == "j"
    assert limited_value('{"a": 1}', KB, False, "j", "public.t") == '{"a": 1}'
    assert limited_value("x" * 2 * KB, KB, True, "doc", "public.t") == "x" * KB


# -- plans and target rows -----------------------------------------------------------

DOCS = Table(
    "public",
    "docs",
    (
        Column("id", INT, nullable=False),
        Column("title", ColumnType(Kind.STRING, length=100)),
        Column("body", TEXT),
        Column("photo", BYTES),
        Column("meta", JSON),
    ),
    primary_key=("id",),
)
ALL = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "1",
    "object-locator": {"schema-name": "%", "table-name": "%"},
    "rule-action": "include",
}


def _plan(table: Table, policy: LobPolicy, *rules: dict[str, Any]) -> Any:
    return parse_table_mappings({"rules": [ALL, *rules]}).plan(table, policy)


def test_support_lobs_false_leaves_the_lob_columns_out() -> None:
    plan = _plan(DOCS, LobPolicy(drop=True))
    assert [c.name for c in plan.target.columns] == ["id", "title"]
    assert plan.read_columns == ("id", "title")
    assert plan.lobs_dropped == ("body", "photo", "meta")
    assert plan.lob_keys_kept == ()
    assert plan.target.primary_key == ("id",)


def test_a_lob_column_of_the_key_is_kept() -> None:
    keyed = Table("public", "pages", (Column("path", TEXT), Column("html", TEXT)), ("path",))
    plan = _plan(keyed, LobPolicy(drop=True))
    assert [c.name for c in plan.target.columns] == ["path"]
    assert (plan.lobs_dropped, plan.lob_keys_kept) == (("html",), ("path",))
    assert plan.target.primary_key == ("path",)


def test_a_table_of_lob_columns_only_cannot_lose_them_all() -> None:
    only = Table("public", "blobs", (Column("a", TEXT), Column("b", BYTES)))
    with pytest.raises(ConfigError, match="every column is a LOB"):
        _plan(only, LobPolicy(drop=True))


def test_limited_mode_gives_lob_outputs_their_limit() -> None:
    plan = _plan(DOCS, LobPolicy(max_bytes=KB, max_kb=1))
    assert [(o.name, o.lob_limit) for o in plan.outputs] == [
        ("id", None),
        ("title", None),
        ("body", KB),
        ("photo", KB),
        ("meta", KB),
    ]
    assert _plan(DOCS, WHOLE).outputs[2].lob_limit is None


def _batch(**columns: list[Any]) -> pa.RecordBatch:
    types = {c.name: c.type for c in DOCS.columns}
    arrow = {"id": pa.int32(), "title": pa.string(), "body": pa.string()}
    arrow |= {"photo": pa.binary(), "meta": pa.string()}
    assert set(columns) <= set(types)
    return pa.RecordBatch.from_arrays(
        [pa.array(v, arrow[k]) for k, v in columns.items()], names=list(columns)
    )


def test_evaluate_outputs_cuts_lobs_and_lists_the_truncations() -> None:
    plan = _plan(DOCS, LobPolicy(max_bytes=KB, max_kb=1))
    batch = _batch(
        id=[1, 2, 3],
        title=["t" * 100, "b", None],
        body=["ü" * KB, "short", None],
        photo=[b"\x00" * KB, b"\x01" * (KB + 1), None],
        meta=['{"k": 1}', None, "[]"],
    )
    cuts: list[Truncation] = []
    out = evaluate_outputs(batch, plan, truncations=cuts)
    assert out.column("body").to_pylist() == ["ü" * 512, "short", None]
    assert out.column("photo").to_pylist() == [b"\x00" * KB, b"\x01" * KB, None]
    assert out.column("title").to_pylist() == ["t" * 100, "b", None]  # not a LOB
    assert [(c.column, c.rows, c.length, c.lob) for c in cuts] == [
        ("body", [0], KB, True),
        ("photo", [1], KB, True),
    ]
    assert cuts[0].reason == "LOB value truncated to 1024 bytes (TargetMetadata.LobMaxSize 1 KB)"


def test_evaluate_outputs_refuses_a_json_document_over_the_limit() -> None:
    plan = _plan(DOCS, LobPolicy(max_bytes=KB, max_kb=1))
    batch = _batch(id=[7], title=["a"], body=["b"], photo=[b"c"], meta=["[" + "1," * KB + "1]"])
    with pytest.raises(DataError, match="column meta: a value of 2051 bytes") as info:
        evaluate_outputs(batch, plan, truncations=[])
    assert info.value.row == "id=7"


def test_evaluate_outputs_never_cuts_a_key() -> None:
    keyed = Table("public", "pages", (Column("path", TEXT), Column("html", TEXT)), ("path",))
    plan = _plan(keyed, LobPolicy(max_bytes=KB, max_kb=1))
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["p" * (KB + 1)]), pa.array(["h"])], names=["path", "html"]
    )
    with pytest.raises(DataError, match="column path: a value of 1025 bytes"):
        evaluate_outputs(batch, plan, truncations=[])


# -- CDC: the LobCutter step -----------------------------------------------------------


def _cutter(
    policy: LobPolicy, table: Table, skip: tuple[tuple[str, str], ...] = ()
) -> tuple[LobCutter, list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    def on_truncation(change: Change, column: str, reason: str) -> bool:
        seen.append((column, reason))
        return True

    tables = {(table.schema, table.name): table}
    cutter = LobCutter(lambda _key: policy, lambda: tables, dict.fromkeys(skip), on_truncation)
    return cutter, seen


def test_lob_cutter_cuts_new_values_and_reports_each() -> None:
    cutter, seen = _cutter(LobPolicy(max_bytes=4, max_kb=0), DOCS)
    change = Change(
        Op.UPDATE,
        "public",
        "docs",
        ("id", "title", "body", "photo", "meta"),
        (1, "a title longer", "ab€cd", b"\x00" * 5, UNCHANGED),
        ("id",),
        (1,),
    )
    [out] = cutter.one(change)
    assert out.values == (1, "a title longer", "ab", b"\x00" * 4, UNCHANGED)
    assert [column for column, _ in seen] == ["body", "photo"]
    assert (
        seen[0][1] == "column body: LOB value truncated to 4 bytes (TargetMetadata.LobMaxSize 0 KB)"
    )
    short = Change(Op.INSERT, "public", "docs", ("id", "body"), (2, "abc"))
    assert cutter.one(short) == [short]


def test_lob_cutter_cuts_an_old_row_as_the_target_holds_it_without_reporting() -> None:
    # A table without a key sends its whole old row (REPLICA IDENTITY FULL) as the key.
    keyless = Table("public", "notes", (Column("n", INT), Column("body", TEXT)))
    cutter, seen = _cutter(LobPolicy(max_bytes=4, max_kb=0), keyless)
    delete = Change(Op.DELETE, "public", "notes", (), (), ("n", "body"), (1, "abcdef"))
    assert cutter.one(delete)[0].key == (1, "abcd")
    assert seen == []


def test_lob_cutter_leaves_keys_and_refuses_a_long_json_document() -> None:
    keyed = Table("public", "pages", (Column("path", TEXT), Column("meta", JSON)), ("path",))
    cutter, seen = _cutter(LobPolicy(max_bytes=4, max_kb=0), keyed)
    with pytest.raises(DataError, match="column path: a value of 6 bytes"):
        cutter.one(Change(Op.INSERT, "public", "pages", ("path",), ("/a/b/c",)))
    with pytest.raises(DataError, match="column meta: a value of 8 bytes"):
        cutter.one(Change(Op.INSERT, "public", "pages", ("path", "meta"), ("/", '{"a":1}x')))
    assert seen == []


def test_lob_cutter_drops_a_change_its_policy_ignores() -> None:
    policy = LobPolicy(max_bytes=2, max_kb=0)
    cutter = LobCutter(
        lambda _key: policy, lambda: {("public", "docs"): DOCS}, {}, lambda *_: False
    )
    assert cutter.one(Change(Op.INSERT, "public", "docs", ("id", "body"), (1, "abc"))) == []


def test_lob_cutter_leaves_new_values_of_transformed_tables_to_the_transformer() -> None:
    cutter, seen = _cutter(LobPolicy(max_bytes=2, max_kb=0), DOCS, skip=(("public", "docs"),))
    change = Change(Op.INSERT, "public", "docs", ("id", "body"), (1, "abc"))
    assert cutter.one(change) == [change] and seen == []


# -- a table-settings rule's lob-settings -----------------------------------------------


def _settings(table: str, lob: dict[str, Any], rule_id: str = "2") -> dict[str, Any]:
    return {
        "rule-type": "table-settings",
        "rule-id": rule_id,
        "rule-name": rule_id,
        "object-locator": {"schema-name": "public", "table-name": table},
        "lob-settings": lob,
    }


LIMITED = LobPolicy(max_bytes=KB, max_kb=1)
TABLE_1KB = LobPolicy(max_bytes=KB, max_kb=1, setting="lob-settings bulk-max-size")


@pytest.mark.parametrize(
    ("lob", "task", "policy"),
    [
        ({"mode": "limited", "bulk-max-size": 1}, WHOLE, TABLE_1KB),
        ({"bulk-max-size": "1"}, WHOLE, TABLE_1KB),  # limited is the default mode
        ({"mode": "limited", "bulk-max-size": "1"}, LobPolicy(drop=True), TABLE_1KB),
        ({"mode": "unlimited", "bulk-max-size": "0"}, LIMITED, WHOLE),
        ({"mode": "unlimited", "bulk-max-size": 100}, LIMITED, WHOLE),
        ({"mode": "unlimited"}, LobPolicy(drop=True), WHOLE),
        ({"mode": "none", "bulk-max-size": "100000"}, LIMITED, LIMITED),
        ({"mode": "none"}, LobPolicy(drop=True), LobPolicy(drop=True)),
        ({"mode": "none"}, WHOLE, WHOLE),
    ],
)
def test_a_tables_lob_settings_replace_the_tasks(
    lob: dict[str, Any], task: LobPolicy, policy: LobPolicy
) -> None:
    parallel = {
        "rule-type": "table-settings",
        "rule-id": "3",
        "rule-name": "3",
        "object-locator": {"schema-name": "public", "table-name": "other"},
        "parallel-load": {"type": "partitions-auto"},
    }
    mappings = parse_table_mappings({"rules": [ALL, _settings("docs", lob), parallel]})
    assert mappings.lob_policy(TableRef("public", "docs"), task) == policy
    assert mappings.lob_policy(TableRef("public", "other"), task) == task
    assert mappings.lob_policies(task) == (task, policy)
    assert mappings.plan(DOCS, task).lobs == policy


def test_a_tables_limit_is_given_to_its_lob_outputs_and_named_in_messages() -> None:
    plan = _plan(DOCS, WHOLE, _settings("docs", {"bulk-max-size": 1}))
    assert [o.lob_limit for o in plan.outputs] == [None, None, KB, KB, KB]
    other = Table("public", "other", DOCS.columns, DOCS.primary_key)
    assert [
        o.lob_limit for o in _plan(other, WHOLE, _settings("docs", {"bulk-max-size": 1})).outputs
    ] == [None] * 5
    cuts: list[Truncation] = []
    out = evaluate_outputs(
        _batch(id=[1], title=["t"], body=["é" * KB], photo=[None], meta=[None]),
        plan,
        truncations=cuts,
    )
    assert out.column("body").to_pylist() == ["é" * 512]
    assert [c.reason for c in cuts] == [
        "LOB value truncated to 1024 bytes (lob-settings bulk-max-size 1 KB)"
    ]
    with pytest.raises(DataError, match=r"longer than lob-settings bulk-max-size \(1 KB\)"):
        evaluate_outputs(
            _batch(id=[1], title=["t"], body=[None], photo=[None], meta=['"' + "y" * KB + '"']),
            plan,
            truncations=[],
        )


def test_unlimited_keeps_a_tables_lob_columns_under_support_lobs_false() -> None:
    plan = _plan(DOCS, LobPolicy(drop=True), _settings("docs", {"mode": "unlimited"}))
    assert [c.name for c in plan.target.columns] == ["id", "title", "body", "photo", "meta"]
    assert plan.lobs_dropped == () and all(o.lob_limit is None for o in plan.outputs)


@pytest.mark.parametrize(
    ("lob", "path"),
    [
        ({"mode": "limited", "bulk-max-size": "0"}, "$.rules[1].lob-settings.bulk-max-size"),
        ({"bulk-max-size": 0}, "$.rules[1].lob-settings.bulk-max-size"),
        ({"mode": "limited"}, "$.rules[1].lob-settings"),
        ({}, "$.rules[1].lob-settings"),
    ],
)
def test_limited_lob_settings_need_a_non_zero_bulk_max_size(lob: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match="needs a non-zero 'bulk-max-size'") as info:
        parse_table_mappings({"rules": [ALL, _settings("docs", lob)]})
    assert info.value.path == path


def test_two_lob_settings_for_one_table_are_a_config_error() -> None:
    rules = [ALL, _settings("docs", {"bulk-max-size": 1}), _settings("docs", {"mode": "none"}, "3")]
    with pytest.raises(ConfigError, match=r"lob-settings are also set by \$\.rules\[1\]") as info:
        parse_table_mappings({"rules": rules})
    assert info.value.path == "$.rules[2].lob-settings"


def test_lob_cutter_uses_each_tables_own_policy() -> None:
    other = Table("public", "other", DOCS.columns, DOCS.primary_key)
    tables = {("public", "docs"): DOCS, ("public", "other"): other}
    policies = {("public", "docs"): LobPolicy(max_bytes=2, max_kb=0, setting="lob-settings x")}
    seen: list[str] = []

    def on_truncation(change: Change, column: str, reason: str) -> bool:
        seen.append(reason)
        return True

    cutter = LobCutter(lambda key: policies.get(key, WHOLE), lambda: tables, {}, on_truncation)
    [cut] = cutter.one(Change(Op.INSERT, "public", "docs", ("id", "body"), (1, "abc")))
    assert cut.values == (1, "ab")
    whole = Change(Op.INSERT, "public", "other", ("id", "body"), (1, "abc"))
    assert cutter.one(whole) == [whole]
    assert seen == ["column body: LOB value truncated to 2 bytes (lob-settings x 0 KB)"]
