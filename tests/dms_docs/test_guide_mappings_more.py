"""The DMS User Guide's table-mapping examples, part 2: expressions (1.5), table settings
(1.6) and the table mappings of the S3 target page (1.7) of tests/dms_docs/INVENTORY.md.
See ``test_guide_mappings.py`` for the approach and for the examples not applicable here.

Guide pages (``doc_source/`` of awsdocs/aws-dms-user-guide at 81be26a):

* EXPRESSIONS = CHAP_Tasks.CustomizingTasks.TableMapping.SelectionTransformation.Expressions
* TABLESETTINGS = CHAP_Tasks.CustomizingTasks.TableMapping.SelectionTransformation.Tablesettings
* S3 = CHAP_Target.S3 (sections "Tagging" and "Parallel load")

Bare rule objects (expr-2..9, tablesettings-1) and the ``"parallel-load"`` fragment of
s3-segment-names-1 are wrapped by the tests into ``{"rules": [...]}`` documents (as text,
so the example's own bytes are parsed), after a selection rule of the source's tables.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import boto3
import pytest

from opendms.assess import assess
from opendms.assess.model import Status
from opendms.config import task_from_dict
from opendms.errors import ConfigError
from tests.dms_docs.guide_run import (
    databases,
    example,
    my_exec,
    pg,
    pg_columns,
    pg_ids,
    pg_rows,
    pg_tables,
    run,
    wrapped,
)
from tests.oracles.lake import read_lake
from tests.support.servers import MariaDBServer, PostgresServer

SETUPS: dict[str, str] = {
    # expr-1
    "item": """
CREATE SCHEMA "Test";
CREATE TABLE "Test"."ITEM" (id int PRIMARY KEY, "FIRST_NAME" text, "LAST_NAME" text);
INSERT INTO "Test"."ITEM" VALUES (1, 'Ann', 'Lee'), (2, 'Bob', NULL);
""",
    # expr-5..9
    "employee": """
CREATE TABLE employee (emp_id int PRIMARY KEY, emp_salary numeric(10,2), emp_number text);
INSERT INTO employee VALUES (1, 19999.50, 'E001'), (2, 19999.49, 'E002'),
  (3, 25000.00, 'E003'), (4, 100.49, NULL);
""",
    # tablesettings-6
    "hr": """
CREATE SCHEMA "HR";
CREATE TABLE "HR"."SALES" ("SALES_NO" int, "REGION" text, amount int,
  PRIMARY KEY ("SALES_NO", "REGION"));
INSERT INTO "HR"."SALES"
  SELECT g, (ARRAY['EAST', 'NORTH', 'SOUTH', 'WEST'])[r], g * r
  FROM generate_series(1, 4000, 7) g, generate_series(1, 4) r;
INSERT INTO "HR"."SALES" VALUES (1000, 'EAST', 0), (1000, 'NORTH', 0), (1000, 'WEST', 0),
  (3000, 'NORTH', 0), (3000, 'WEST', 0), (3000, 'ZULU', 0)
  ON CONFLICT DO NOTHING;
CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, sale int NOT NULL);
INSERT INTO sales
  SELECT g, (ARRAY['EAST', 'NORTH', 'SOUTH', 'WEST', 'ZULU'])[g % 5 + 1], g % 5000
  FROM generate_series(1, 3000) g;
""",
    # tablesettings-8..11
    "lob": """
CREATE SCHEMA "INV";
CREATE TABLE "INV"."ITEMS" (id int PRIMARY KEY, doc text, pic bytea);
INSERT INTO "INV"."ITEMS" VALUES
  (1, repeat('lob text ', 40000), decode(repeat('00ff', 150000), 'hex')),
  (2, 'small', '\\x01'), (3, NULL, NULL);
""",
}


@pytest.fixture(scope="module")
def source(pg_server: PostgresServer) -> Iterator[Callable[[str], str]]:
    """``source(key)``: a PostgreSQL database holding ``SETUPS[key]`` (once per module)."""
    names: dict[str, str] = {}

    def create(key: str) -> str:
        names[key] = f"g_{key}_{uuid.uuid4().hex[:8]}"
        return pg_server.create_database(names[key])

    yield from databases(create, lambda key: pg_server.drop_database(names[key]), SETUPS)


MYSQL_HR = [
    "CREATE TABLE SALES (SALES_NO int NOT NULL, REGION varchar(10) NOT NULL, amount int,"
    " PRIMARY KEY (SALES_NO, REGION)) PARTITION BY RANGE (SALES_NO) ("
    " PARTITION ABCD VALUES LESS THAN (1000), PARTITION EFGH VALUES LESS THAN (2000),"
    " PARTITION IJKL VALUES LESS THAN (3000), PARTITION MNOP VALUES LESS THAN (4000),"
    " PARTITION QRST VALUES LESS THAN (5000), PARTITION UVWXYZ VALUES LESS THAN (6000),"
    " PARTITION LATER VALUES LESS THAN MAXVALUE)",
    "INSERT INTO SALES SELECT seq, ELT(1 + seq % 4, 'EAST', 'NORTH', 'SOUTH', 'WEST'), seq"
    " FROM seq_1_to_7000_step_3",
    "INSERT IGNORE INTO SALES VALUES (1000, 'NORTH', 0), (1000, 'EAST', 0), (3000, 'WEST', 0),"
    " (3000, 'ZULU', 0)",
    "CREATE TABLE ORDERS (id int PRIMARY KEY, amount int) PARTITION BY HASH (id) PARTITIONS 3",
    "INSERT INTO ORDERS SELECT seq, seq * 2 FROM seq_1_to_999",
]


@pytest.fixture(scope="module")
def mysql_hr(mariadb_server: MariaDBServer) -> Iterator[str]:
    """A MariaDB database ``HR``: SALES partitioned by range (partitions named as in the
    Guide, plus LATER), ORDERS by hash."""
    url = mariadb_server.create_database("HR")
    my_exec(url, MYSQL_HR)
    yield url
    mariadb_server.drop_database("HR")


def _mysql_ids(url: str, table: str, where: str = "1") -> list[tuple[int, str]]:
    from tests.dms_docs.guide_run import my

    rows = my(url, f"SELECT SALES_NO, REGION FROM {table} WHERE {where} ORDER BY 1, 2")
    return [(r[0], r[1]) for r in rows]


# -- 1.5 expressions (page EXPRESSIONS) ----------------------------------------------


def test_expr_1_concatenation(
    source: Callable[[str], str], pg_target_db: str, tmp_path: Path
) -> None:
    """EXPRESSIONS, expr-1: ``FULL_NAME`` = ``$FIRST_NAME||'_'||$LAST_NAME`` as DMS
    string(50); NULL when a part is NULL (SQLite's ``||``)."""
    run(source("item"), pg_target_db, example("expr-1"), tmp_path)
    assert pg_columns(pg_target_db, "Test", "ITEM")[-1] == ("FULL_NAME", "character varying(50)")
    assert pg_rows(pg_target_db, "Test", "ITEM", 'id, "FULL_NAME"') == [
        (1, "Ann_Lee"),
        (2, None),
    ]


def test_expr_1_assessment_reports_a_mapping_error_as_such(pg_db: str, pg_target_db: str) -> None:
    """expr-1 against a ``Test.ITEM`` without ``LAST_NAME``: ``opendms assess`` raises the
    table-mapping error naming the expression, not a failed check saying the source user
    cannot read the tables (nor a primary-key warning); with the column it passes."""
    pg(pg_db, 'CREATE SCHEMA "Test"')
    pg(pg_db, 'CREATE TABLE "Test"."ITEM" (id int PRIMARY KEY, "FIRST_NAME" text)')
    spec = {"name": "g", "source": pg_db, "target": pg_target_db}
    task = task_from_dict({**spec, "table_mappings": example("expr-1")}, where="test")
    with pytest.raises(ConfigError, match=r"\$\.rules\[1\]\.expression: .*LAST_NAME"):
        assess(task)
    pg(pg_db, 'ALTER TABLE "Test"."ITEM" ADD COLUMN "LAST_NAME" text')
    checks = {c.id: c for c in assess(task)}
    assert checks["tables-selected"].status is Status.PASSED
    assert checks["tables-primary-key"].status is Status.PASSED


def _cdc_table(pg_db: str) -> None:
    pg(pg_db, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    pg(pg_db, "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')")


def _changes(pg_db: str) -> None:
    pg(pg_db, "INSERT INTO t VALUES (4, 'd')")
    pg(pg_db, "UPDATE t SET v = 'B' WHERE id = 2")
    pg(pg_db, "DELETE FROM t WHERE id = 3")


def test_expr_2_operation_indicator(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    """EXPRESSIONS, expr-2: ``Operation`` flags CDC rows: ``I`` inserted, ``U`` updated,
    and a deleted row is kept and flagged ``D``."""
    _cdc_table(pg_db)
    mapping = wrapped(example("expr-2"), schema="public")
    run(pg_db, pg_target_db, mapping, tmp_path, cdc=True)
    _changes(pg_db)
    run(pg_db, pg_target_db, mapping, tmp_path, cdc=True)
    rows = {r[0]: r[1:] for r in pg_rows(pg_target_db, "public", "t", 'id, v, "Operation"')}
    assert rows[2] == ("B", "U") and rows[3] == ("c", "D") and rows[4] == ("d", "I")
    assert set(rows) == {1, 2, 3, 4}


@pytest.mark.parametrize("example_id", ["expr-3", "expr-4"])
def test_expr_3_4_header_columns(
    example_id: str, pg_db: str, pg_target_db: str, tmp_path: Path
) -> None:
    """EXPRESSIONS, expr-3 (``$AR_H_STREAM_POSITION``, the source position of the change)
    and expr-4 (``$AR_H_CHANGE_SEQ``: 35 digits, 16 of a timestamp then 19 of a counter,
    increasing): ``transact_id`` of the rows CDC wrote."""
    _cdc_table(pg_db)
    mapping = wrapped(example(example_id), schema="public")
    run(pg_db, pg_target_db, mapping, tmp_path, cdc=True)
    pg(pg_db, "INSERT INTO t VALUES (4, 'd')")
    pg(pg_db, "INSERT INTO t VALUES (5, 'e')")
    run(pg_db, pg_target_db, mapping, tmp_path, cdc=True)
    ids = dict(pg_rows(pg_target_db, "public", "t", "id, transact_id"))
    new = [ids[4], ids[5]]
    assert all(isinstance(v, str) and v for v in new), new
    if example_id == "expr-4":
        assert all(re.fullmatch(r"[0-9]{35}", v) for v in new), new
        assert new[0] < new[1]
    else:
        assert new[0] != new[1]


EMPLOYEES = {1: Decimal("19999.50"), 2: Decimal("19999.49"), 3: Decimal("25000.00")}
EMPLOYEES[4] = Decimal("100.49")


def test_expr_5_case(source: Callable[[str], str], pg_target_db: str, tmp_path: Path) -> None:
    """EXPRESSIONS, expr-5: as printed the expression has typographic quotes (U+2018/U+2019),
    which are no SQLite string delimiters: opendms rejects it as a mapping error naming
    the expression. With ASCII quotes, ``emp_seniority`` is SENIOR where
    ``round($emp_salary) >= 20000``, else JUNIOR."""
    printed = wrapped(example("expr-5"), schema="public")
    with pytest.raises(ConfigError, match=r"\$\.rules\[1\]\.expression"):
        run(source("employee"), pg_target_db, printed, tmp_path)
    assert pg_tables(pg_target_db) == set()
    fixed = printed.replace("\u2018", "'").replace("\u2019", "'")
    run(source("employee"), pg_target_db, fixed, tmp_path)
    assert pg_rows(pg_target_db, "public", "employee", "emp_id, emp_seniority") == [
        (1, "SENIOR"),
        (2, "JUNIOR"),
        (3, "SENIOR"),
        (4, "JUNIOR"),
    ]


def test_expr_6_datetime(source: Callable[[str], str], pg_target_db: str, tmp_path: Path) -> None:
    """EXPRESSIONS, expr-6: ``createdate`` (datetime(6)) = ``datetime ()``, the time
    each row is written (UTC, SQLite's ``datetime()``)."""
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    run(source("employee"), pg_target_db, wrapped(example("expr-6"), schema="public"), tmp_path)
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert pg_columns(pg_target_db, "public", "employee")[-1] == (
        "createdate",
        "timestamp(6) without time zone",
    )
    values = [r[0] for r in pg_rows(pg_target_db, "public", "employee", "createdate")]
    assert len(values) == 4 and all(before <= v <= after for v in values), values


def test_expr_7_round(source: Callable[[str], str], pg_target_db: str, tmp_path: Path) -> None:
    """EXPRESSIONS, expr-7: ``rounded_emp_salary`` (int8) = ``round($emp_salary)``
    (half away from zero)."""
    run(source("employee"), pg_target_db, wrapped(example("expr-7"), schema="public"), tmp_path)
    assert pg_columns(pg_target_db, "public", "employee")[-1] == ("rounded_emp_salary", "bigint")
    assert pg_rows(pg_target_db, "public", "employee", "emp_id, rounded_emp_salary") == [
        (1, 20000),
        (2, 19999),
        (3, 25000),
        (4, 100),
    ]


def test_expr_8_hash_sha256(
    source: Callable[[str], str], pg_target_db: str, tmp_path: Path
) -> None:
    """EXPRESSIONS, expr-8: ``hashed_emp_number`` (string(64)) = hex SHA-256 of the
    value (NULL for NULL)."""
    run(source("employee"), pg_target_db, wrapped(example("expr-8"), schema="public"), tmp_path)
    got = dict(pg_rows(pg_target_db, "public", "employee", "emp_id, hashed_emp_number"))
    for emp_id, number in ((1, "E001"), (2, "E002"), (3, "E003")):
        assert got[emp_id].lower() == hashlib.sha256(number.encode()).hexdigest()
    assert got[4] is None


def test_expr_9_source_schema(
    source: Callable[[str], str], pg_target_db: str, tmp_path: Path
) -> None:
    """EXPRESSIONS, expr-9 (printed with ``"rule-action"`` twice, with one value: loaded
    as printed): ``schema_name`` = ``$AR_M_SOURCE_SCHEMA`` on every table."""
    run(source("employee"), pg_target_db, wrapped(example("expr-9"), schema="public"), tmp_path)
    assert set(pg_rows(pg_target_db, "public", "employee", "schema_name")) == {("public",)}


# -- 1.6 table settings (page TABLESETTINGS) -----------------------------------------


def test_tablesettings_1_wildcards_are_rejected(
    source: Callable[[str], str], pg_target_db: str
) -> None:
    """TABLESETTINGS, tablesettings-1: a table-settings rule whose table-name is ``%`` is
    refused ("Exact schema and table name required when using table settings rule")."""
    mapping = wrapped(example("tablesettings-1"))
    spec = {"name": "g", "source": source("hr"), "target": pg_target_db, "table_mappings": mapping}
    with pytest.raises(ConfigError, match="exact schema and table name") as info:
        task_from_dict(spec, where="test")
    assert "$.rules[1].object-locator.table-name" in str(info.value)


def _all_sales(url: str) -> list[tuple[int, str]]:
    return _mysql_ids(url, "SALES")


def test_tablesettings_2_partitions_auto(mysql_hr: str, pg_target_db: str, tmp_path: Path) -> None:
    """TABLESETTINGS, tablesettings-2 (MariaDB source): ``HR.SALES`` read partition by
    partition: every row exactly once."""
    run(mysql_hr, pg_target_db, example("tablesettings-2"), tmp_path)
    got = pg_rows(pg_target_db, "HR", "SALES", '"SALES_NO", "REGION"', "1, 2")
    assert got == _all_sales(mysql_hr)
    assert len(pg_ids(pg_target_db, "HR", "ORDERS")) == 999


def test_tablesettings_4_partitions_list(mysql_hr: str, pg_target_db: str, tmp_path: Path) -> None:
    """TABLESETTINGS, tablesettings-4 (MariaDB source): only the listed partitions
    ``ABCD`` … ``UVWXYZ`` are loaded (not ``LATER``), each row once."""
    run(mysql_hr, pg_target_db, example("tablesettings-4"), tmp_path)
    got = pg_rows(pg_target_db, "HR", "SALES", '"SALES_NO", "REGION"', "1, 2")
    expected = _mysql_ids(mysql_hr, "SALES", "SALES_NO < 6000")
    assert got == expected and len(expected) < len(_all_sales(mysql_hr))


def test_tablesettings_6_ranges(
    source: Callable[[str], str], pg_target_db: str, tmp_path: Path
) -> None:
    """TABLESETTINGS, tablesettings-6 (PostgreSQL source): three segments by the
    boundaries (1000, NORTH) and (3000, WEST): every row exactly once, the boundary
    rows included."""
    url = source("hr")
    store = run(url, pg_target_db, example("tablesettings-6"), tmp_path)
    cols, order = '"SALES_NO", "REGION", amount', "1, 2"
    assert pg_rows(pg_target_db, "HR", "SALES", cols, order) == pg_rows(
        url, "HR", "SALES", cols, order
    )
    sales = {t.name: t for t in store.tables("guide")}["SALES"]
    assert sales.full_load_rows == len(pg_rows(url, "HR", "SALES"))


def test_tablesettings_7_ranges_and_partitions(
    mysql_hr: str, pg_target_db: str, tmp_path: Path
) -> None:
    """TABLESETTINGS, tablesettings-7 (MariaDB source): ``SALES`` by ranges, ``ORDERS`` by
    its (hash) partitions: every row of both exactly once."""
    run(mysql_hr, pg_target_db, example("tablesettings-7"), tmp_path)
    got = pg_rows(pg_target_db, "HR", "SALES", '"SALES_NO", "REGION"', "1, 2")
    assert got == _all_sales(mysql_hr)
    assert pg_ids(pg_target_db, "HR", "ORDERS") == list(range(1, 1000))


@pytest.mark.parametrize(
    "example_id", ["tablesettings-8", "tablesettings-9", "tablesettings-10", "tablesettings-11"]
)
def test_tablesettings_8_11_lob_settings(
    example_id: str, source: Callable[[str], str], pg_target_db: str, tmp_path: Path
) -> None:
    """TABLESETTINGS, tablesettings-8..11 (limited with bulk-max-size 100000 KB, unlimited,
    unlimited with 100000 KB, none): the LOBs of ``INV.ITEMS`` (300 KB each, under every
    limit) arrive whole."""
    url = source("lob")
    run(url, pg_target_db, example(example_id), tmp_path)
    assert pg_rows(pg_target_db, "INV", "ITEMS") == pg_rows(url, "INV", "ITEMS")
    assert len(pg_rows(pg_target_db, "INV", "ITEMS", "doc")[0][0]) == 360000


def test_tablesettings_8_with_a_limit_the_lobs_exceed(
    source: Callable[[str], str], pg_target_db: str, tmp_path: Path
) -> None:
    """TABLESETTINGS, tablesettings-8 with ``bulk-max-size`` 1 (KB) instead of 100000: the
    LOBs of ``INV.ITEMS`` longer than 1 KB are cut to 1024 bytes, each cut recorded
    (DataTruncationErrorPolicy LOG_ERROR, the default)."""
    url = source("lob")
    mappings = example("tablesettings-8").replace('"100000"', '"1"')
    assert '"bulk-max-size": "1"' in mappings
    store = run(url, pg_target_db, mappings, tmp_path)
    rows = pg_rows(pg_target_db, "INV", "ITEMS")
    assert rows == [
        (1, ("lob text " * 114)[:1024], bytes.fromhex("00ff" * 512)),
        (2, "small", b"\x01"),
        (3, None, None),
    ]
    reason = (
        "LOB value truncated to 1024 bytes (lob-settings bulk-max-size 1 KB) "
        "(DataTruncationErrorPolicy LOG_ERROR)"
    )
    assert store.data_errors("guide") == [
        ("INV.ITEMS", "id=1", "doc", reason),
        ("INV.ITEMS", "id=1", "pic", reason),
    ]


# -- 1.7 the S3 page's table mappings (page S3) ---------------------------------------


def _tags(s3_url: str, table: str) -> list[dict[str, str]]:
    """The tag sets of the objects of ``<schema>/<table>/`` in the lake."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(s3_url)
    query = parse_qs(parts.query)
    s3 = boto3.session.Session().client("s3", endpoint_url=query["endpoint_url"][0])
    prefix = parts.path.strip("/") + "/" + table + "/"
    listed = s3.list_objects_v2(Bucket=parts.netloc, Prefix=prefix).get("Contents", [])
    out = []
    for obj in listed:
        tags = s3.get_object_tagging(Bucket=parts.netloc, Key=obj["Key"])["TagSet"]
        out.append({t["Key"]: t["Value"] for t in tags})
    assert out, f"no objects under {prefix}"
    return out


def _tag_source(pg_db: str, schemas: dict[str, list[str]]) -> None:
    for schema, tables in schemas.items():
        pg(pg_db, f"CREATE SCHEMA {schema}")
        for table in tables:
            pg(pg_db, f'CREATE TABLE {schema}."{table}" (id int PRIMARY KEY)')
            pg(pg_db, f'INSERT INTO {schema}."{table}" VALUES (1)')


def test_s3tag_1_static_tags(pg_db: str, s3_url: str, tmp_path: Path) -> None:
    """S3, s3tag-1: the objects of ``aat2.STOCK`` get tag_1..3."""
    _tag_source(pg_db, {"aat2": ["STOCK", "OTHER"]})
    run(pg_db, s3_url, example("s3tag-1"), tmp_path)
    expected = {"tag_1": "value_1", "tag_2": "value_2", "tag_3": "value_3"}
    assert all(tags == expected for tags in _tags(s3_url, "aat2/STOCK"))


def test_s3tag_2_dynamic_tags(pg_db: str, s3_url: str, tmp_path: Path) -> None:
    """S3, s3tag-2 (printed with a trailing comma after each post-processing locator's
    ``"table-name"``, which is not JSON: tested with those commas removed): every object
    gets ``dw-schema-name`` / ``dw-schema-table`` with ``${schema-name}`` and
    ``${table-name}`` substituted, except ``aat.ITEM``, whose exact rule wins."""
    _tag_source(pg_db, {"aat": ["ITEM", "SALE"], "other": ["T"]})
    text = example("s3tag-2")
    fixed = re.sub(r'("table-name": "[^"]*"),(\s*\})', r"\1\2", text)
    assert fixed != text
    run(pg_db, s3_url, fixed, tmp_path)
    assert all(
        tags == {"tag_1": "value_1", "tag_2": "value_2"} for tags in _tags(s3_url, "aat/ITEM")
    )
    for schema, table in (("aat", "SALE"), ("other", "T")):
        expected = {"dw-schema-name": schema, "dw-schema-table": f"my_prefix_{table}"}
        assert all(tags == expected for tags in _tags(s3_url, f"{schema}/{table}"))


def test_s3tag_3_dynamic_tag_names(pg_db: str, s3_url: str, tmp_path: Path) -> None:
    """S3, s3tag-3 (printed with a trailing comma after ``"table-name"``, the
    post-processing rule never closed and both selection rules numbered "1": tested with
    the comma removed, the ``}`` added and the second selection rule numbered "2"): tag
    names with ``${schema-name}`` substituted, for ``ITEM`` of ``retail`` and
    ``wholesale``."""
    _tag_source(pg_db, {"retail": ["ITEM"], "wholesale": ["ITEM"]})
    text = example("s3tag-3")
    fixed = re.sub(r'("table-name": "ITEM"),(\s*\})', r"\1\2", text)
    fixed = fixed.replace("            ]\n    ]\n}", "            ]\n        }\n    ]\n}")
    second = fixed.index('"rule-id": "1"', fixed.index('"rule-id": "1"') + 1)
    fixed = fixed[:second] + '"rule-id": "2"' + fixed[second + len('"rule-id": "1"') :]
    run(pg_db, s3_url, fixed, tmp_path)
    for schema in ("retail", "wholesale"):
        assert all(
            tags
            == {
                "dw-schema-name": schema,
                "dw-schema-table": "my_prefix_ITEM",
                f"{schema}_ITEM_tag_1": "value_1",
                f"{schema}_ITEM_tag_2": "value_2",
            }
            for tags in _tags(s3_url, f"{schema}/ITEM")
        )


SEGMENT_RULES = """{"rules": [
  {"rule-type": "selection", "rule-id": "1", "rule-name": "1",
   "object-locator": {"schema-name": "public", "table-name": "sales"},
   "rule-action": "include"},
  {"rule-type": "table-settings", "rule-id": "2", "rule-name": "2",
   "object-locator": {"schema-name": "public", "table-name": "sales"},
FRAGMENT}
]}"""


def test_s3_segment_names_1(source: Callable[[str], str], tmp_path: Path) -> None:
    """S3, s3-segment-names-1 (a ``"parallel-load"`` member: the test puts it into a
    table-settings rule of ``public.sales``): the three range segments are written to the
    folders ``custom_segment1..3`` of the table folder, ``LOAD00000001.csv`` in each;
    read by the independent lake reader (which takes LOAD files only in those folders),
    every row is in exactly one of them, the one its range gives, with the source's
    values."""
    url = source("hr")
    lake = tmp_path / "lake"
    fragment = example("s3-segment-names-1")
    run(url, f"file://{lake}", SEGMENT_RULES.replace("FRAGMENT", fragment), tmp_path)
    names = ["custom_segment1", "custom_segment2", "custom_segment3"]
    sales = read_lake(
        lake,
        keys=["id"],
        columns=["id", "region", "sale"],
        parse={"id": int, "sale": int},
        segment_names={"public.sales": names},
    )["public.sales"]
    assert sales.loads == [f"public/sales/{n}/LOAD00000001.csv" for n in names]
    assert sales.cdc == []
    expected = pg_rows(url, "public", "sales", "id, region, sale", "id")
    assert [(r["id"], r["region"], r["sale"]) for r in sales.rows] == expected
    bounds = [("NORTH", 1000), ("WEST", 3000)]  # the fragment's boundaries
    for row in sales.load_rows:  # a segment holds the rows up to its boundary
        segment = names.index(row.file.split("/")[2])
        value = (row.row["region"], row.row["sale"])
        assert segment == 0 or value > bounds[segment - 1], (row.file, value)
        assert segment == 2 or value <= bounds[segment], (row.file, value)
    assert {row.file for row in sales.load_rows} == set(sales.loads)  # none empty
    assert pg_tables(url)  # the source is untouched
