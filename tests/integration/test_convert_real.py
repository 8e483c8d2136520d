"""Schema conversion of real-world sample schemas (pagila- and sakila-like, see
``sample_schemas``), with the converted DDL executed on the real target (``--apply`` /
``--check``) and the result checked with rows: defaults, checks, keys, views."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from opendms.cli.convert_cmd import convert as convert_cmd
from opendms.convert import Item, Status, convert
from tests.integration.sample_schemas import PAGILA, SAKILA
from tests.support.sql import connect, execute, query

OLD_SQLITE = sqlite3.sqlite_version_info < (3, 44, 0)  # no ORDER BY inside GROUP_CONCAT


def _items(items: list[Item]) -> dict[tuple[str, str], Item]:
    return {(i.kind, i.name): i for i in items}


def _failed(items: list[Item]) -> set[str]:
    return {f"{i.kind}:{i.name}" for i in items if i.status is Status.FAILED}


def _status(items: dict[tuple[str, str], Item], kind: str, name: str) -> Status:
    return items[(kind, name)].status


def _fill_pagila(run: Any, quote: str = '"', payment_ids: str = "") -> None:
    """The same rows on every target (``run`` executes one statement)."""
    run("INSERT INTO language (name) VALUES ('English'), ('French')")
    run(
        "INSERT INTO film (title, release_year, language_id, original_language_id, "
        f"{quote}fulltext{quote}) VALUES ('Alien', 1979, 1, 2, 'alien'), "
        "('Heat', 1995, 1, NULL, 'heat')"
    )
    run("INSERT INTO actor (first_name, last_name) VALUES ('Ann', 'Lee')")
    run("INSERT INTO film_actor (actor_id, film_id) VALUES (1, 2), (1, 1)")
    run("INSERT INTO customer (first_name, last_name, email) VALUES ('Bob', 'Ray', 'b@x')")
    run("INSERT INTO rental (rental_date, film_id, customer_id) VALUES ('2022-01-05', 1, 1)")
    ids = ("payment_id, ", "1, ", "2, ") if payment_ids else ("", "", "")
    run(
        f"INSERT INTO payment ({ids[0]}customer_id, rental_id, amount, payment_date) VALUES "
        f"({ids[1]}1, 1, 2.99, '2022-01-05 10:00:00'), ({ids[2]}1, 1, 0.99, '2022-02-07 11:00:00')"
    )


# -- PostgreSQL (pagila) -> MariaDB -----------------------------------------------------------


def test_pagila_to_mariadb(pg_db: str, mysql_target_db: str, tmp_path: Path) -> None:
    execute(pg_db, PAGILA)
    result = convert(pg_db, "mysql", ["public"], tmp_path, apply_to=mysql_target_db)
    assert _failed(result.items) == set()
    script = (tmp_path / "schema.sql").read_text()
    assert "'now'" not in script and "DEFAULT (CURRENT_DATE)" in script
    items = _items(result.items)
    # sequences behind serial / identity / nextval() defaults are not manual items
    assert _status(items, "sequences", "actor_actor_id_seq") is Status.CONVERTED
    assert _status(items, "sequences", "payment_payment_id_seq") is Status.WARNING  # shared
    assert _status(items, "sequences", "receipt_no") is Status.MANUAL  # standalone
    triggers = sorted(name for kind, name in items if kind == "triggers")
    assert triggers == ["actor.last_updated", "film.film_fulltext_trigger", "film.last_updated"]
    assert _status(items, "functions", "group_concat") is Status.MANUAL  # the aggregate
    film_list = items[("views", "film_list")]
    assert film_list.status is Status.MANUAL and "separator" in film_list.messages[0]
    assert _status(items, "views", "a_cheap_films") is Status.MANUAL  # reads film_list
    assert _status(items, "views", "actor_names") is Status.WARNING  # string_agg
    assert _status(items, "views", "customer_list") is Status.CONVERTED
    assert _status(items, "views", "rental_by_category") is Status.MANUAL  # materialized
    assert "NO ACTION" in items[("constraints", "payment.payment_rental_id_fkey")].messages[0]
    assert any("partitioned" in m for m in items[("tables", "payment")].messages)
    assert _status(items, "indexes", "film.film_fulltext_idx") is Status.MANUAL  # GiST
    assert _status(items, "domains", "year") is Status.CONVERTED
    assert "-- MANUAL: view public.film_list" in script
    # a check calling a function without a MySQL translation is a manual item
    isfinite = items[("constraints", "rental.rental_return_date_check")]
    assert isfinite.status is Status.MANUAL and "isfinite()" in isfinite.messages[0]

    conn = connect(mysql_target_db)
    _fill_pagila(lambda sql: query(conn, sql), "`")
    assert query(conn, "SELECT title_upper, rating, rental_rate FROM film ORDER BY 1") == [
        ("ALIEN", "G", Decimal("4.99")),
        ("HEAT", "G", Decimal("4.99")),
    ]
    today = query(conn, "SELECT CURDATE()")[0][0]
    assert query(conn, "SELECT create_date, birthday, activebool FROM customer") == [
        (today, today, 1)
    ]
    assert query(conn, "SELECT payment_id FROM payment ORDER BY 1") == [(1,), (2,)]
    assert query(conn, "SELECT titles FROM actor_names") == [("Alien; Heat",)]
    assert query(conn, "SELECT name, notes FROM customer_list") == [("Bob Ray", "active")]
    with pytest.raises(Exception, match="release_year_year_check"):  # the domain's check
        query(
            conn,
            "INSERT INTO film (title, release_year, language_id, `fulltext`) "
            "VALUES ('Old', 1800, 1, '')",
        )
    with pytest.raises(Exception, match="email_email_check"):
        query(conn, "INSERT INTO customer (first_name, last_name, email) VALUES ('a', 'b', 'x')")
    with pytest.raises(Exception, match="refund_reason_check"):
        query(conn, "INSERT INTO refund (amount, reason) VALUES (1, 'Late1')")
    with pytest.raises(Exception, match="foreign key constraint fails"):
        query(conn, "DELETE FROM rental WHERE rental_id = 1")  # SET NULL on NOT NULL refuses
    query(conn, "DELETE FROM language WHERE language_id = 2")  # ON DELETE SET NULL
    assert query(conn, "SELECT original_language_id FROM film WHERE film_id = 1") == [(None,)]
    conn.close()


# -- PostgreSQL (pagila) -> SQLite and PostgreSQL ------------------------------------------


def test_pagila_to_sqlite(pg_db: str, tmp_path: Path) -> None:
    execute(pg_db, PAGILA)
    target = tmp_path / "target.db"
    result = convert(pg_db, "sqlite", ["public"], tmp_path / "out", apply_to=f"sqlite:///{target}")
    assert _failed(result.items) == ({"views:actor_names"} if OLD_SQLITE else set())
    items = _items(result.items)
    assert _status(items, "constraints", "refund.refund_reason_check") is Status.MANUAL
    assert _status(items, "sequences", "actor_actor_id_seq") is Status.CONVERTED
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    _fill_pagila(conn.execute, payment_ids="yes")  # no AUTOINCREMENT in a composite key
    rows = conn.execute("SELECT title_upper, rating FROM film ORDER BY 1").fetchall()
    assert rows == [("ALIEN", "G"), ("HEAT", "G")]
    today = conn.execute("SELECT date('now')").fetchone()[0]
    assert conn.execute("SELECT create_date, birthday FROM customer").fetchall() == [(today, today)]
    with pytest.raises(sqlite3.IntegrityError, match="release_year_year_check"):
        conn.execute(
            "INSERT INTO film (title, release_year, language_id, fulltext) "
            "VALUES ('Old', 1800, 1, '')"
        )
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        conn.execute("DELETE FROM rental WHERE rental_id = 1")  # SET NULL on NOT NULL
    conn.close()


def test_pagila_to_postgres(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    """PostgreSQL to PostgreSQL keeps domains, partitions, GiST and expression indexes."""
    execute(pg_db, PAGILA)
    result = convert(pg_db, "postgresql", ["public"], tmp_path, apply_to=pg_target_db)
    assert _failed(result.items) == set()
    items = _items(result.items)
    assert _status(items, "views", "film_list") is Status.MANUAL  # group_concat not created
    assert _status(items, "views", "rental_by_category") is Status.WARNING  # refresh it
    assert _status(items, "constraints", "rental.rental_return_date_check") is Status.CONVERTED
    conn = connect(pg_target_db)
    _fill_pagila(lambda sql: query(conn, sql))
    parts = query(conn, "SELECT tableoid::regclass::text FROM payment ORDER BY payment_id")
    assert parts == [("payment_p2022_01",), ("payment_p2022_02",)]
    domains = query(
        conn,
        "SELECT typname FROM pg_type WHERE typtype = 'd' AND typname IN "
        "('year', 'email') ORDER BY 1",
    )
    assert domains == [("email",), ("year",)]
    methods = query(
        conn,
        "SELECT c.relname, am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam "
        "WHERE c.relname IN ('film_fulltext_idx', 'film_lower_title') ORDER BY 1",
    )
    assert methods == [("film_fulltext_idx", "gist"), ("film_lower_title", "btree")]
    assert query(conn, "SELECT create_date = CURRENT_DATE FROM customer") == [(True,)]
    query(conn, "REFRESH MATERIALIZED VIEW rental_by_category")
    assert query(conn, "SELECT count(*) FROM rental_by_category") == [(0,)]
    with pytest.raises(Exception, match="year_check"):
        query(
            conn,
            "INSERT INTO film (title, release_year, language_id, fulltext) "
            "VALUES ('Old', 1800, 1, '')",
        )
    conn.close()


# -- MySQL (sakila) -> PostgreSQL, SQLite, MySQL -----------------------------------------------


def test_sakila_to_postgres(mysql_db: str, pg_target_db: str, tmp_path: Path) -> None:
    execute(mysql_db, SAKILA)
    result = convert(mysql_db, "postgresql", (), tmp_path, apply_to=pg_target_db)
    assert _failed(result.items) == set()
    items = _items(result.items)
    assert sorted(n for k, n in items if k == "triggers") == ["film.ins_film", "film.upd_film"]
    assert _status(items, "indexes", "film.idx_title_description") is Status.MANUAL  # FULLTEXT
    assert _status(items, "views", "actor_titles") is Status.CONVERTED  # after zz_actor_info
    film = items[("tables", "film")].messages
    assert any("ON UPDATE CURRENT_TIMESTAMP" in m for m in film)
    assert any("partitioned" in m for m in items[("tables", "payment")].messages)
    schema = json.loads((tmp_path / "report.json").read_text())["schemas"][0]
    conn = connect(pg_target_db)
    query(conn, f'SET search_path = "{schema}"')
    query(conn, "INSERT INTO language (name) VALUES ('English'), ('French')")
    query(
        conn,
        "INSERT INTO film (title, language_id, original_language_id) VALUES "
        "('Heat', 1, 2), ('Alien', 1, 2)",
    )
    query(conn, "INSERT INTO actor (first_name, last_name) VALUES ('Ann', 'Lee')")
    query(conn, "INSERT INTO film_actor VALUES (1, 1), (1, 2)")
    rows = query(
        conn, "SELECT title_upper, rating::text, added = CURRENT_DATE FROM film ORDER BY film_id"
    )
    assert rows == [("HEAT", "G", True), ("ALIEN", "G", True)]
    assert query(conn, "SELECT film_info FROM actor_titles") == [("Alien; Heat",)]
    query(conn, "DELETE FROM language WHERE language_id = 2")  # ON DELETE SET NULL
    assert query(conn, "SELECT count(*) FROM film WHERE original_language_id IS NULL") == [(2,)]
    conn.close()


def test_sakila_to_sqlite_check(mysql_db: str, tmp_path: Path) -> None:
    """``--check`` on SQLite runs the DDL in memory: nothing is written to the target."""
    execute(mysql_db, SAKILA)
    target = tmp_path / "target.db"
    result = convert(mysql_db, "sqlite", (), tmp_path / "out", check_on=f"sqlite:///{target}")
    expected = {"views:zz_actor_info"} if OLD_SQLITE else set()
    assert _failed(result.items) == expected
    assert not target.exists() or sqlite3.connect(target).execute(
        "SELECT count(*) FROM sqlite_master"
    ).fetchone() == (0,)


def test_sakila_to_mariadb(mysql_db: str, mysql_target_db: str, tmp_path: Path) -> None:
    execute(mysql_db, SAKILA)
    result = convert(mysql_db, "mysql", (), tmp_path, apply_to=mysql_target_db)
    assert _failed(result.items) == set()
    conn = connect(mysql_target_db)
    query(conn, "INSERT INTO language (name) VALUES ('English')")
    query(conn, "INSERT INTO film (title, language_id) VALUES ('Heat', 1)")
    query(conn, "UPDATE language SET last_update = '2000-01-01 00:00:00'")
    query(conn, "UPDATE language SET name = 'en'")  # ON UPDATE CURRENT_TIMESTAMP kept
    assert query(conn, "SELECT last_update > '2020-01-01' FROM language") == [(1,)]
    kinds = query(
        conn,
        "SELECT INDEX_TYPE FROM information_schema.STATISTICS WHERE "
        "TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'film_idx_title_description'",
    )
    assert kinds == [("FULLTEXT",), ("FULLTEXT",)]
    conn.close()


# -- DDL the target refuses is reported as failed --------------------------------------------

WIDE = [
    "CREATE TABLE notes (id int PRIMARY KEY, "
    + ", ".join(f"c{i} varchar(1000)" for i in range(20))
    + ")",
    "CREATE INDEX notes_c0 ON notes (c0)",
    "CREATE VIEW note_ids AS SELECT id FROM notes",
    "CREATE TABLE fine (id int PRIMARY KEY, note text)",
]


def test_refused_ddl_is_failed_not_converted(
    pg_db: str, mysql_target_db: str, tmp_path: Path
) -> None:
    """MariaDB refuses a table wider than 65535 bytes: the table, its key, its index and
    the view reading it are reported failed with the target's error, and commented out in
    schema.sql; the rest is created."""
    execute(pg_db, WIDE)
    result = convert(pg_db, "mysql", ["public"], tmp_path, apply_to=mysql_target_db)
    failed = {  # README: the refused table, the statements of it not tried, the refused view
        "tables:notes",
        "constraints:notes.PRIMARY KEY",
        "indexes:notes.notes_c0",
        "views:note_ids",
    }
    assert _failed(result.items) == failed
    items = _items(result.items)
    assert "Row size too large" in items[("tables", "notes")].messages[-1]
    assert "not tried" in items[("indexes", "notes.notes_c0")].messages[-1]
    assert _status(items, "tables", "fine") is Status.CONVERTED
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["totals"]["failed"] == len(failed)  # counted from the expected items
    for kind in report["summary"]:
        want = sum(f.startswith(f"{kind}:") for f in failed)
        assert report["summary"][kind]["failed"] == want, kind
    script = (tmp_path / "schema.sql").read_text()
    assert "-- FAILED on the target: Row size too large" in script
    assert "\n-- CREATE TABLE `notes` (" in script and "\nCREATE TABLE `fine` (" in script
    html = (tmp_path / "report.html").read_text()
    assert "class='failed'" in html and "index <code>public.notes.notes_c0</code>" in html
    tables = query(connect(mysql_target_db), "SHOW TABLES")
    assert tables == [("fine",)]


def test_check_reports_failures_and_leaves_nothing(
    pg_db: str, mysql_target_db: str, tmp_path: Path
) -> None:
    execute(pg_db, WIDE)
    args = ["--source", pg_db, "--target-engine", "mysql", "--out", str(tmp_path)]
    result = CliRunner().invoke(convert_cmd, [*args, "--check", mysql_target_db])
    assert result.exit_code == 1, result.output
    assert "failed: table public.notes: the mysql target refused it: Row size too large" in (
        result.output
    )
    assert "failed: index public.notes.notes_c0: the mysql target refused it: not tried" in (
        result.output
    )
    assert "opendms_check" not in result.output
    conn = connect(mysql_target_db)
    assert query(conn, "SHOW TABLES") == []
    assert query(conn, "SHOW DATABASES LIKE 'opendms\\_check%'") == []
    conn.close()


def test_check_on_postgres_rolls_back(pg_db: str, pg_target_db: str, tmp_path: Path) -> None:
    """A view reading a schema left out of the conversion fails on the target; the check
    runs in a transaction that is rolled back."""
    execute(
        pg_db,
        [
            "CREATE SCHEMA app",
            "CREATE SCHEMA lookup",
            "CREATE TABLE lookup.codes (code text PRIMARY KEY)",
            "CREATE TABLE app.orders (id int PRIMARY KEY, code text)",
            "CREATE VIEW app.coded AS SELECT o.id, c.code FROM app.orders o "
            "JOIN lookup.codes c ON c.code = o.code",
        ],
    )
    result = convert(pg_db, "postgresql", ["app"], tmp_path, check_on=pg_target_db)
    assert _failed(result.items) == {"views:coded"}
    message = _items(result.items)[("views", "coded")].messages[-1]
    assert 'relation "lookup.codes" does not exist' in message
    conn = connect(pg_target_db)
    left = query(
        conn,
        "SELECT nspname FROM pg_namespace WHERE nspname IN ('app') "
        "OR nspname LIKE 'opendms_check%'",
    )
    assert left == []
    conn.close()


def test_apply_to_another_engine_is_refused(pg_db: str, mysql_target_db: str) -> None:
    execute(pg_db, ["CREATE TABLE t (id int PRIMARY KEY)"])
    result = CliRunner().invoke(
        convert_cmd,
        ["--source", pg_db, "--target-engine", "postgresql", "--apply", mysql_target_db],
    )
    assert result.exit_code == 1
    assert "a mysql database cannot run DDL converted for postgresql" in result.output
