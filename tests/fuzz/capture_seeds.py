"""Write the seed corpora of the fuzz targets from real data (run by hand, results
committed): pgoutput messages and binlog events captured from private PostgreSQL and
MariaDB servers (tests.support.servers), plus hand-written table mappings, settings
strings and task files.

    python tests/fuzz/capture_seeds.py
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fuzz.targets import CORPUS, frame  # noqa: E402
from tests.support.servers import MariaDBServer, PostgresServer  # noqa: E402
from tests.support.sql import execute  # noqa: E402

PG_WORK = [
    "CREATE TABLE kinds (id int PRIMARY KEY, name text, price numeric(12,2), at timestamptz,"
    " doc jsonb, raw bytea, tags text[], big text)",
    "CREATE TABLE nokey (a int, b text)",
    "ALTER TABLE nokey REPLICA IDENTITY FULL",
    "CREATE PUBLICATION fuzz FOR ALL TABLES",
    "SELECT pg_create_logical_replication_slot('fuzz', 'pgoutput')",
    "INSERT INTO kinds VALUES (1, 'a ✓', 1.25, '2024-01-01 10:00+02', '{\"k\": [1, 2]}',"
    " '\\x00ff', '{x,y}', repeat('z', 3000)), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    "UPDATE kinds SET name = 'b', price = price + 1 WHERE id = 1",
    "UPDATE kinds SET id = 3 WHERE id = 2",
    "DELETE FROM kinds WHERE id = 3",
    "INSERT INTO nokey VALUES (1, 'x'), (1, 'x')",
    "UPDATE nokey SET b = 'y' WHERE a = 1",
    "DELETE FROM nokey",
    "TRUNCATE kinds, nokey",
    "SELECT pg_logical_emit_message(true, 'opendms', 'mark-1')",
]
PEEK = (
    "SELECT data FROM pg_logical_slot_peek_binary_changes('fuzz', NULL, NULL, "
    "'proto_version', '1', 'publication_names', 'fuzz', 'messages', 'true')"
)

MY_WORK = [
    "CREATE TABLE kinds (id int PRIMARY KEY, name varchar(20), price decimal(12,2),"
    " at datetime(6), ts timestamp(3) NULL, d date, t time(2), doc json, raw varbinary(8),"
    " e enum('a','b'), s set('x','y'), f double, u bigint unsigned, y year, b bit(5),"
    " txt text, small tinyint)",
    "INSERT INTO kinds VALUES (1, 'a ✓', 1.25, '2024-01-01 10:00:00.5', '2024-01-01 10:00:00.25',"
    " '2024-01-02', '12:30:00.5', '{\"k\": [1, 2, null, true]}', x'00ff', 'b', 'x,y', 1.5,"
    " 18446744073709551615, 2024, b'10101', repeat('z', 300), -5),"
    " (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL, NULL)",
    "UPDATE kinds SET name = 'b', price = price + 1 WHERE id = 1",
    "DELETE FROM kinds WHERE id = 2",
    "ALTER TABLE kinds ADD COLUMN extra int",
    "TRUNCATE kinds",
]


def pg_seeds(out: Path) -> None:
    with PostgresServer() as server:
        url = server.create_database("fuzz")
        execute(url, PG_WORK)
        import psycopg

        with psycopg.connect(url) as conn:
            messages = [bytes(r[0]) for r in conn.execute(PEEK).fetchall()]
    mark = b"opendms\0" + len(b"mark-1").to_bytes(4, "big") + b"mark-1"
    messages.append(b"M\x00" + bytes(8) + mark)  # opendms's own logical message
    (out / "stream").write_bytes(frame(messages))
    for i, message in enumerate(messages):
        (out / f"message-{i:02d}").write_bytes(frame([*messages[:1], message]))


def binlog_seeds(out: Path) -> None:
    with MariaDBServer() as server:
        url = server.create_database("fuzz")
        execute(url, MY_WORK)
        execute(url, ["FLUSH BINARY LOGS"])
        files = sorted(server.datadir.glob("mariadb-bin.0*"))
        raw = b"".join(f.read_bytes()[4:] for f in files)  # past each file's magic
    events = list(_events(raw))
    start = events[0]  # the format description: sets the checksum and the flavour
    (out / "stream").write_bytes(b"".join(events))
    for i, event in enumerate(events[1:], 1):
        (out / f"event-{i:03d}").write_bytes(start + event)
    maps = [i for i, e in enumerate(events) if e[4] == 19]  # TABLE_MAP + its rows event
    for n, i in enumerate(maps):
        (out / f"rows-{n:02d}").write_bytes(start + events[i] + events[i + 1])


def _events(raw: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos + 19 <= len(raw):
        size = int.from_bytes(raw[pos + 9 : pos + 13], "little")
        out.append(raw[pos : pos + size])
        pos += size
    return out


MAPPINGS = [
    {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "1",
                "object-locator": {"schema-name": "public", "table-name": "ord%"},
                "rule-action": "include",
                "filters": [
                    {
                        "filter-type": "source",
                        "column-name": "id",
                        "filter-conditions": [
                            {"filter-operator": "between", "start-value": "1", "end-value": "9"}
                        ],
                    }
                ],
            },
            {
                "rule-type": "transformation",
                "rule-id": "2",
                "rule-name": "2",
                "rule-target": "column",
                "object-locator": {"schema-name": "%", "table-name": "%", "column-name": "name"},
                "rule-action": "rename",
                "value": "label",
            },
            {
                "rule-type": "transformation",
                "rule-id": "3",
                "rule-name": "3",
                "rule-target": "column",
                "object-locator": {"schema-name": "public", "table-name": "orders"},
                "rule-action": "add-column",
                "value": "twice",
                "expression": "$id * 2",
                "data-type": {"type": "int8"},
            },
            {
                "rule-type": "transformation",
                "rule-id": "4",
                "rule-name": "4",
                "rule-target": "schema",
                "object-locator": {"schema-name": "public"},
                "rule-action": "rename",
                "value": "dw",
            },
            {
                "rule-type": "table-settings",
                "rule-id": "5",
                "rule-name": "5",
                "object-locator": {"schema-name": "public", "table-name": "orders"},
                "parallel-load": {"type": "ranges", "columns": ["id"], "boundaries": [["5"]]},
            },
        ]
    },
    [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "1",
            "object-locator": {"schema-name": "[ps]%", "table-name": "_rders"},
            "rule-action": "exclude",
        }
    ],
]
SETTINGS = [
    "postgresql://u:p@localhost:5432/db?sslmode=require\ncaptureDDLs=true;heartbeatEnable=Y;"
    "heartbeatFrequency=5",
    "mysql://root@127.0.0.1/shop\nserverTimezone=UTC;eventsPollInterval=5;afterConnectScript=x",
    "s3://bucket/folder?region=eu-west-1\ndataFormat=parquet;cdcInsertsOnly=false;"
    "timestampColumnName=ts;datePartitionEnabled=true;DatePartitionTimezone=Asia/Seoul;"
    "csvDelimiter=|;maxFileSize=1024",
    "file:///tmp/lake\naddColumnName=true;compressionType=GZIP;includeOpForFullLoad=y",
    "sqlite:///tmp/x.db\nrole=source",
]
TASKS = [
    "name: orders\nsource: postgresql://u@localhost/shop\ntarget: file:///tmp/lake\n"
    "migration_type: full-load-and-cdc\n",
    "name: t\nsource:\n  url: mysql://root@127.0.0.1/shop\n  settings: {serverTimezone: UTC}\n"
    "target: postgresql://u@h/db\ntable_mappings: |\n"
    '  {"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "1",\n'
    '   "object-locator": {"schema-name": "shop", "table-name": "%"},\n'
    '   "rule-action": "include"}]}\n'
    "task_settings:\n  FullLoadSettings: {TargetTablePrepMode: TRUNCATE_BEFORE_LOAD}\n"
    "  ValidationSettings: {EnableValidation: true}\n"
    "  ErrorBehavior: {DataErrorPolicy: LOG_ERROR}\n",
    "name: x\nsource: sqlite:///a.db\ntarget: s3://b/p\nstate: /tmp/s.db\n"
    "migration_type: full-load\n",
]


def text_seeds() -> None:
    for name, items in (("mappings", MAPPINGS), ("settings", SETTINGS), ("taskfile", TASKS)):
        folder = _fresh(CORPUS / name)
        for i, item in enumerate(items):
            text = item if isinstance(item, str) else json.dumps(item, indent=1)
            (folder / f"seed-{i}").write_text(text, encoding="utf-8")


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def main() -> None:
    text_seeds()
    pg_seeds(_fresh(CORPUS / "pgoutput"))
    binlog_seeds(_fresh(CORPUS / "binlog"))
    for folder in sorted(CORPUS.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
