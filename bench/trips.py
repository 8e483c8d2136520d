"""The benchmark table: 1M-row, 25-column taxi ``trips`` (seed 000's schema, trimmed to 25)."""

from __future__ import annotations

COLUMNS = [
    ("id", "bigint", "BIGINT"),
    ("rider_id", "integer", "INT"),
    ("driver_id", "integer", "INT"),
    ("rider_name", "varchar(100)", "VARCHAR(100)"),
    ("rider_mobile", "varchar(100)", "VARCHAR(100)"),
    ("rider_email", "varchar(100)", "VARCHAR(100)"),
    ("trip_info", "varchar(100)", "VARCHAR(100)"),
    ("driver_name", "varchar(100)", "VARCHAR(100)"),
    ("driver_email", "varchar(100)", "VARCHAR(100)"),
    ("driver_mobile", "varchar(100)", "VARCHAR(100)"),
    ("vehicle_id", "varchar(50)", "VARCHAR(50)"),
    ("cab_type_id", "integer", "INT"),
    ("vendor_id", "integer", "INT"),
    ("pickup_datetime", "timestamp", "DATETIME"),
    ("dropoff_datetime", "timestamp", "DATETIME"),
    ("store_and_fwd_flag", "varchar(1)", "VARCHAR(1)"),
    ("rate_code_id", "integer", "INT"),
    ("pickup_longitude", "double precision", "DOUBLE"),
    ("pickup_latitude", "double precision", "DOUBLE"),
    ("passenger_count", "integer", "INT"),
    ("trip_distance", "numeric(10,2)", "DECIMAL(10,2)"),
    ("fare_amount", "numeric(10,2)", "DECIMAL(10,2)"),
    ("tip_amount", "numeric(10,2)", "DECIMAL(10,2)"),
    ("total_amount", "numeric(10,2)", "DECIMAL(10,2)"),
    ("status", "varchar(20)", "VARCHAR(20)"),
]

# One expression per column over the row number n (same values on both engines).
_VALUES = [
    "n",
    "n % 100000",
    "n % 50000",
    "concat('person', n % 100000)",
    "concat('+1', 1000000000 + n)",
    "concat('person', n % 100000, '@example.com')",
    "concat('2024-04-08T04:53:55Z,', lpad(cast(n as char(7)), 7, '0'))",
    "concat('driver', n % 50000)",
    "concat('driver', n % 50000, '@taxi.com')",
    "concat('+1', 2000000000 + n)",
    "concat('UDT', n % 900000)",
    "n % 3",
    "n % 2 + 1",
    "TS0",
    "TS1",
    "'N'",
    "n % 6 + 1",
    "-73.9 + (n % 1000) / 10000.0",
    "40.7 + (n % 777) / 10000.0",
    "n % 4 + 1",
    "(n % 5000) / 100.0",
    "(n % 20000) / 100.0",
    "(n % 500) / 100.0",
    "(n % 20000) / 100.0 + (n % 500) / 100.0",
    "'Completed'",
]


def pg_ddl(table: str = "trips") -> str:
    cols = ", ".join(f"{n} {t}" for n, t, _ in COLUMNS)
    return f"CREATE TABLE {table} ({cols}, PRIMARY KEY (id))"


def mysql_ddl(table: str = "trips") -> str:
    cols = ", ".join(f"{n} {t}" for n, _, t in COLUMNS)
    return f"CREATE TABLE {table} ({cols}, PRIMARY KEY (id)) ENGINE=InnoDB CHARSET=utf8mb4"


def pg_fill(rows: int, table: str = "trips") -> str:
    exprs = [
        v.replace("cast(n as char(7))", "n::text")
        .replace("TS0", "timestamp '2024-01-01' + n * interval '1 second'")
        .replace("TS1", "timestamp '2024-01-01' + n * interval '1 second' + interval '265 seconds'")
        for v in _VALUES
    ]
    select = ", ".join(f"{e}" for e in exprs)
    return f"INSERT INTO {table} SELECT {select} FROM generate_series(1, {rows}) AS g(n)"


def mysql_fill(rows: int, table: str = "trips") -> str:
    exprs = [
        v.replace("TS0", "timestamp '2024-01-01 00:00:00' + interval n second").replace(
            "TS1", "timestamp '2024-01-01 00:00:00' + interval n + 265 second"
        )
        for v in _VALUES
    ]
    select = ", ".join(exprs)
    return f"INSERT INTO {table} SELECT {select} FROM (SELECT seq AS n FROM seq_1_to_{rows}) s"
