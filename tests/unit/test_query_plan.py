"""The federated query planner (no I/O): which columns, predicates and limits each
table reference may hand to its source, which stay in DuckDB, and the SQL sent."""

from __future__ import annotations

import pytest

from opendms.endpoints.mysql.ddldialect import DIALECT as MYSQL
from opendms.endpoints.query.plan import Scan, TableName, parse, plan
from opendms.endpoints.query.predicates import accepts, to_sql
from opendms.errors import ConfigError
from opendms.model import Kind

TRIPS = ["id", "fare", "city", "started", "note"]
ITEMS = ["ride_id", "kind", "price"]


def scans(sql: str, *columns: list[str]) -> list[Scan]:
    return plan(parse(sql), list(columns))[0]


def pushed(scan: Scan) -> list[tuple[str, str, tuple[str, ...]]]:
    """The scan's predicates as the query wrote them (not those derived through joins)."""
    return [
        (p.column, p.op, tuple(v.text for v in p.values)) for p in scan.predicates if not p.derived
    ]


def test_tables_named_endpoint_schema_table() -> None:
    query = parse('WITH c AS (SELECT 1 AS x) SELECT * FROM pg.public.trips, c, lake.s."t$changes"')
    assert query.tables == (
        TableName("pg", "public", "trips"),
        TableName("lake", "s", "t", changes=True),
    )


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM trips", "name tables as ENDPOINT.SCHEMA.TABLE"),
        ("SELEC 1", "SQL syntax error"),
        ("SELECT * FROM pg.public.trips WHERE (", "line 1, column"),
        ("DELETE FROM pg.public.trips", "only queries can be run"),
    ],
)
def test_bad_queries(sql: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(sql)


def test_unknown_column_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        scans("SELECT nope FROM pg.public.trips", TRIPS)


def test_simple_predicates_and_columns_are_pushed() -> None:
    (scan,) = scans(
        "SELECT id, fare FROM pg.public.trips WHERE id = 5 AND 3 < fare "
        "AND city IN ('a', 'b') AND started BETWEEN DATE '2024-01-01' AND '2024-02-01' "
        "AND note IS NOT NULL AND city LIKE 'x%' AND id NOT IN (1, -2.5)",
        TRIPS,
    )
    assert scan.columns == ("id", "fare", "city", "started", "note")
    assert pushed(scan) == [
        ("id", "=", ("5",)),
        ("fare", ">", ("3",)),  # flipped
        ("city", "in", ("a", "b")),
        ("started", "between", ("2024-01-01", "2024-02-01")),
        ("note", "is not null", ()),
        ("city", "like", ("x%",)),
        ("id", "not in", ("1", "-2.5")),
    ]


@pytest.mark.parametrize(
    "where",
    [
        "lower(city) = 'a'",  # a function of a column
        "id = fare",  # two columns
        "id = 1 OR fare = 2",  # OR
        "id + 1 = 2",
        "id IN (SELECT ride_id FROM ddb.d.items)",  # a subquery
        "NOT (id = 1)",
        "city ILIKE 'a%'",
        "city LIKE 'a\\_%'",  # a backslash: PostgreSQL and MySQL escape with it
    ],
)
def test_what_stays_in_duckdb(where: str) -> None:
    found = scans(f"SELECT id FROM pg.public.trips WHERE {where}", TRIPS, ITEMS)
    assert found[0].predicates == ()


def test_or_across_tables_stays_and_each_side_gets_its_own() -> None:
    trips, items = scans(
        "SELECT t.id FROM pg.public.trips t JOIN ddb.dynamodb.items i ON i.ride_id = t.id "
        "AND i.kind = 'ride' WHERE t.id = 7 AND (t.fare > 3 OR i.price < 2)",
        TRIPS,
        ITEMS,
    )
    assert pushed(trips) == [("id", "=", ("7",))]
    assert pushed(items) == [("kind", "=", ("ride",))]
    assert derived(items) == [("ride_id", "=", ("7",))]
    assert set(items.columns) == {"ride_id", "kind", "price"}
    assert set(trips.columns) == {"id", "fare"}


def test_outer_joins_push_only_what_keeps_the_answer() -> None:
    trips, items = scans(
        "SELECT t.id FROM pg.public.trips t LEFT JOIN ddb.dynamodb.items i "
        "ON i.ride_id = t.id AND i.kind IS NULL AND t.fare > 1 "
        "WHERE i.price IS NULL AND i.price < 5 AND t.id > 0",
        TRIPS,
        ITEMS,
    )
    # ON of a LEFT JOIN cuts the joined table only; WHERE IS NULL on the nullable side stays
    assert pushed(trips) == [("id", ">", ("0",))]
    assert pushed(items) == [("price", "<", ("5",)), ("kind", "is null", ())]
    right = scans(
        "SELECT 1 FROM pg.public.trips t RIGHT JOIN ddb.d.items i ON i.ride_id = t.id "
        "AND t.id = 1 WHERE t.note IS NULL AND i.kind = 'a'",
        TRIPS,
        ITEMS,
    )
    assert pushed(right[0]) == [] and pushed(right[1]) == [("kind", "=", ("a",))]


def test_limit_only_for_a_lone_table_with_every_conjunct_pushable() -> None:
    (scan,) = scans("SELECT * FROM pg.public.trips WHERE id > 3 LIMIT 10 OFFSET 5", TRIPS)
    assert scan.limit == 15 and scan.complete
    (partial,) = scans("SELECT * FROM pg.public.trips WHERE lower(city) = 'a' LIMIT 10", TRIPS)
    assert partial.limit == 10 and not partial.complete
    for sql in [
        "SELECT * FROM pg.public.trips ORDER BY id LIMIT 10",
        "SELECT count(*) FROM pg.public.trips LIMIT 10",
        "SELECT DISTINCT city FROM pg.public.trips LIMIT 10",
        "SELECT city FROM pg.public.trips GROUP BY city LIMIT 10",
    ]:
        assert scans(sql, TRIPS)[0].limit is None, sql
    joined = scans("SELECT * FROM pg.public.trips, ddb.d.items LIMIT 3", TRIPS, ITEMS)
    assert [s.limit for s in joined] == [None, None]


def test_query_rewritten_onto_registered_tables() -> None:
    found, sql = plan(
        parse("SELECT trips.id, x.kind FROM pg.public.trips JOIN ddb.d.items AS x ON true"),
        [TRIPS, ITEMS],
    )
    assert [s.register for s in found] == ["__q0", "__q1"]
    assert sql == 'SELECT trips.id, x.kind FROM __q0 AS "trips" JOIN __q1 AS "x" ON TRUE'


def test_a_table_named_twice_is_two_scans() -> None:
    a, b = scans(
        "SELECT * FROM pg.public.trips a JOIN pg.public.trips b ON a.id = b.id + 1 "
        "WHERE a.city = 'x' AND b.fare > 2",
        TRIPS,
        TRIPS,
    )
    assert pushed(a) == [("city", "=", ("x",))] and pushed(b) == [("fare", ">", ("2",))]


def test_correlated_columns_are_read() -> None:
    trips, items = scans(
        "SELECT t.id FROM pg.public.trips t WHERE EXISTS "
        "(SELECT 1 FROM ddb.d.items i WHERE i.ride_id = t.id AND t.note = 'n')",
        TRIPS,
        ITEMS,
    )
    assert set(trips.columns) == {"id", "note"} and items.columns == ("ride_id",)


def test_column_names_keep_the_tables_spelling() -> None:
    (scan,) = scans("SELECT fare FROM pg.public.trips WHERE CITY = 'a'", ["Fare", "City"])
    assert scan.columns == ("Fare", "City") and scan.predicates[0].column == "City"


KINDS = frozenset({Kind.INT64, Kind.STRING, Kind.DATE, Kind.DECIMAL})


@pytest.mark.parametrize(
    ("where", "kind", "taken"),
    [
        ("c = 1", Kind.INT64, True),
        ("c = '1'", Kind.INT64, False),  # text vs number: engines convert differently
        ("c = 1", Kind.STRING, False),
        ("c = 'a'", Kind.STRING, True),
        ("c < 'a'", Kind.STRING, False),  # collations order text differently
        ("c <> 'a'", Kind.STRING, False),  # and case-insensitive ones say equal
        ("c < '2024-01-01'", Kind.DATE, True),
        ("c LIKE 'a%'", Kind.STRING, True),
        ("c = 1.5", Kind.DECIMAL, True),
        ("c = 1.5", Kind.FLOAT32, False),  # not in the engine's kinds
        ("c IS NULL", Kind.FLOAT32, False),
        ("c IS NULL", Kind.STRING, True),
    ],
)
def test_what_an_engine_accepts(where: str, kind: Kind, taken: bool) -> None:
    (scan,) = scans(f"SELECT c FROM e.s.t WHERE {where}", ["c"])
    (predicate,) = scan.predicates
    assert accepts(predicate, kind, KINDS, frozenset({Kind.STRING})) is taken


def test_predicates_written_in_each_dialect() -> None:
    (scan,) = scans(
        "SELECT c FROM e.s.t WHERE c = 'it''s \\ x' AND c NOT IN (1, 2) AND c IS NOT NULL",
        ["c"],
    )
    written = [(to_sql(p, "postgres"), to_sql(p, MYSQL.sqlglot)) for p in scan.predicates]
    assert written == [
        ("\"c\" = 'it''s \\ x'", "`c` = 'it''s \\\\ x'"),
        ('NOT "c" IN (1, 2)', "NOT `c` IN (1, 2)"),
        ('NOT "c" IS NULL', "NOT `c` IS NULL"),
    ]


def derived(scan: Scan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(p.column, p.op, tuple(v.text for v in p.values)) for p in scan.predicates if p.derived]


def test_join_equalities_carry_predicates_to_the_other_table() -> None:
    trips, items = scans(
        "SELECT * FROM pg.public.trips t JOIN ddb.d.items i ON i.ride_id = t.id "
        "WHERE t.id IN (5, 6) AND t.note IS NULL",
        TRIPS,
        ITEMS,
    )
    assert derived(items) == [("ride_id", "in", ("5", "6"))]  # IS NULL never carries
    assert derived(trips) == []
    # an outer join carries from the preserved table to the joined one only
    left = scans(
        "SELECT * FROM pg.public.trips t LEFT JOIN ddb.d.items i ON i.ride_id = t.id "
        "WHERE t.id = 5 AND i.price > 2",
        TRIPS,
        ITEMS,
    )
    assert derived(left[1]) == [("ride_id", "=", ("5",))] and derived(left[0]) == []
    third = scans(
        "SELECT * FROM pg.public.trips a LEFT JOIN ddb.d.items i ON i.ride_id = a.fare "
        "AND a.id = b.id JOIN pg.public.trips b ON true WHERE a.fare = 1",
        TRIPS,
        ITEMS,
        TRIPS,
    )
    assert derived(third[2]) == []  # a LEFT JOIN's ON never cuts another table
