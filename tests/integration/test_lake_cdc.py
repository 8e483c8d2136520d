"""CDC files in the lake (local directory and SeaweedFS S3): names, Op and timestamp
columns, values, DMS filtering settings, date partitions, DDL and crash retries.

Transactions are built by hand; the lake is read back with the independent reader
(:mod:`tests.oracles.lake`: every file under the prefix, folded strictly by Op) and
compared with the expected final table. File names are derived from the README's
rules (:func:`~tests.oracles.lakefiles.batch_stamps`), never taken from a run.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from opendms.changes import LSN, UNCHANGED, ApplyPlan, Change, ColumnChange, Op, Transaction
from opendms.endpoints.base import EndpointURL, PrepMode
from opendms.endpoints.lake.apply import LakeApplier
from opendms.endpoints.lake.engine import ENGINE as LAKE
from opendms.endpoints.lake.settings import LakeSettings, lake_settings
from opendms.endpoints.lake.target import LakeTarget
from opendms.endpoints.pyvalues import parse_iso_interval
from opendms.errors import DataError
from opendms.model import Column, ColumnType, Kind, Table, arrow_type
from tests.oracles.lake import Lake, LakeTable, read_lake
from tests.oracles.lakefiles import NOT_SENT, batch_stamps, next_stamp

T0 = datetime(2024, 3, 15, 10, 30, 0, 123456, tzinfo=UTC)
C = ColumnType

ORDERS = Table(
    "public",
    "orders",
    (
        Column("order_id", C(Kind.INT32), nullable=False),
        Column("customer", C(Kind.STRING)),
        Column("total", C(Kind.DECIMAL, precision=10, scale=2)),
        Column("placed", C(Kind.TIMESTAMPTZ)),
    ),
    primary_key=("order_id",),
)
ITEMS = Table(
    "inventory",
    "items",
    (Column("sku", C(Kind.STRING), nullable=False), Column("qty", C(Kind.INT16))),
    primary_key=("sku",),
)
KINDS = Table(
    "public",
    "kinds",
    (
        Column("id", C(Kind.INT64), nullable=False),
        Column("b", C(Kind.BOOL)),
        Column("i16", C(Kind.INT16)),
        Column("f32", C(Kind.FLOAT32)),
        Column("f64", C(Kind.FLOAT64)),
        Column("dec", C(Kind.DECIMAL, precision=38, scale=10)),
        Column("dec_wide", C(Kind.DECIMAL, precision=50, scale=5)),
        Column("dec_free", C(Kind.DECIMAL)),
        Column("txt", C(Kind.STRING)),
        Column("bin", C(Kind.BINARY)),
        Column("d", C(Kind.DATE)),
        Column("t", C(Kind.TIME)),
        Column("ts", C(Kind.TIMESTAMP)),
        Column("tstz", C(Kind.TIMESTAMPTZ)),
        Column("iv", C(Kind.INTERVAL)),
        Column("js", C(Kind.JSON)),
        Column("u", C(Kind.UUID)),
        Column("arr", C(Kind.ARRAY, element=C(Kind.INT32))),
    ),
    primary_key=("id",),
)
KINDS_ROW: dict[str, Any] = {
    "id": 9_007_199_254_740_993,
    "b": True,
    "i16": -32768,
    "f32": 1.5,
    "f64": -2.5e-300,
    "dec": Decimal("-12345678901234567890.0000000001"),
    "dec_wide": Decimal("123456789012345678901234567890123456789012345.12345"),
    "dec_free": "3.14159265358979323846264338327950288419716939937510",
    "txt": 'emoji 😀 clef 𝄞, "quoted"\nnew line',
    "bin": b"\x00\xffbin\x10",
    "d": date(1999, 12, 31),
    "t": time(23, 59, 59, 999999),
    "ts": datetime(2000, 2, 29, 12, 0, 0, 1),
    "tstz": datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
    "iv": parse_iso_interval("P14M3DT3600.000001S"),
    "js": '{"a": [1, 2, {"b": null}]}',
    "u": str(uuid.UUID(int=42)),
    "arr": [1, None, -3],
}


def plan(table: Table) -> ApplyPlan:
    return ApplyPlan(table, table, {c.name: c.name for c in table.columns})


def txn(n: int, ms: int, *changes: Change) -> Transaction:
    return Transaction(n, T0 + timedelta(milliseconds=ms), LSN(n * 16), list(changes))


def ins(table: Table, **values: Any) -> Change:
    return Change(Op.INSERT, table.schema, table.name, tuple(values), tuple(values.values()))


def upd(table: Table, key: dict[str, Any] | None = None, **values: Any) -> Change:
    key = key or {}
    return Change(
        Op.UPDATE,
        table.schema,
        table.name,
        tuple(values),
        tuple(values.values()),
        tuple(key),
        tuple(key.values()),
    )


def delete(table: Table, **key: Any) -> Change:
    return Change(
        Op.DELETE, table.schema, table.name, key_columns=tuple(key), key=tuple(key.values())
    )


def canon(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A row with every column, each value in the canonical Python form of its type."""
    out: dict[str, Any] = {}
    for col in table.columns:
        array: Any = pa.array([row.get(col.name)], arrow_type(col.type))
        out[col.name] = array.to_pylist()[0]
    return out


KEYS = {"public.orders": ["order_id"], "inventory.items": ["sku"], "public.kinds": ["id"]}
# the data columns of headerless CSV files, and CSV text to values
COLUMNS = {t.qualified: [c.name for c in t.columns] for t in (ORDERS, ITEMS, KINDS)}
PARSE: dict[str, Callable[[str], Any]] = {
    "order_id": int,
    "total": Decimal,
    "placed": datetime.fromisoformat,
    "qty": int,
}
_OPENED: dict[int, tuple[str, dict[str, Any]]] = {}


def lake(tmp_path: Path, **settings: Any) -> LakeTarget:
    tmp_path.mkdir(parents=True, exist_ok=True)  # a lake folder is made only in one that exists
    return _open(f"file://{tmp_path}/lake", settings)


def _open(url: str, settings: dict[str, Any]) -> LakeTarget:
    target = LAKE.lake_target(EndpointURL.parse(url), settings)
    _OPENED[id(target)] = (url, settings)
    return target


def oracle(target: LakeTarget, lenient: bool = False, **keys: list[str]) -> Lake:
    """The whole lake of ``target`` read by the independent reader, with the settings
    the test gave the target (``keys``: more tables, by schema__table)."""
    url, settings = _OPENED[id(target)]
    more = {k.replace("__", "."): v for k, v in keys.items()}
    return read_lake(
        url, settings, keys={**KEYS, **more}, lenient=lenient, columns=COLUMNS, parse=PARSE
    )


def table(target: LakeTarget, model: Table, lenient: bool = False) -> LakeTable:
    return oracle(target, lenient)[model.qualified]


def names(target: LakeTarget, model: Table) -> list[str]:
    """The table's CDC files (paths from its folder) in name order; none: []."""
    lake = oracle(target)
    return lake[model.qualified].cdc_names() if model.qualified in lake.tables else []


def stamped(ext: str, *first_commits: datetime) -> list[str]:
    """The file names of one-file batches with these first commit times (README rule)."""
    return [f"{stamp}.{ext}" for stamp in batch_stamps(first_commits)]


def all_files(target: LakeTarget) -> list[str]:
    selector = pafs.FileSelector(target.storage.root, recursive=True, allow_not_found=True)
    infos = target.storage.fs.get_file_info(selector)
    root = target.storage.root.rstrip("/") + "/"
    return sorted(i.path[len(root) :] for i in infos if i.type == pafs.FileType.File)


def in_file(t: LakeTable, n: int, *columns: str) -> list[tuple[Any, ...]]:
    """The n-th CDC file's rows: (Op, the values of ``columns``)."""
    path = t.cdc[n]
    return [(c.op, *(c.row.get(k) for k in columns)) for c in t.changes if c.file == path]


def orders_batches() -> list[list[Transaction]]:
    """Two batches over two tables: inserts, updates (one moving the key), deletes."""
    first = [
        txn(
            1,
            0,
            ins(ORDERS, order_id=1, customer="ann", total=Decimal("10.50"), placed=T0),
            ins(ORDERS, order_id=2, customer="bob", total=Decimal("-0.01"), placed=None),
            ins(ITEMS, sku="A-1", qty=5),
        ),
        txn(2, 40, upd(ORDERS, order_id=1, customer="ann", total=Decimal("11.00"), placed=T0)),
        txn(3, 41, ins(ORDERS, order_id=3, customer="𝄞 cleo", total=None, placed=T0)),
    ]
    second = [
        txn(
            4,
            2000,
            upd(
                ORDERS,
                {"order_id": 2},
                order_id=20,
                customer="bob",
                total=Decimal("1.00"),
                placed=None,
            ),
            delete(ORDERS, order_id=3),
        ),
        txn(5, 2500, delete(ITEMS, sku="A-1"), ins(ITEMS, sku="B-2", qty=-7)),
    ]
    return [first, second]


def expected_orders() -> list[dict[str, Any]]:
    return [
        canon(ORDERS, {"order_id": 1, "customer": "ann", "total": Decimal("11.00"), "placed": T0}),
        canon(ORDERS, {"order_id": 20, "customer": "bob", "total": Decimal("1.00")}),
    ]


def run_orders(target: LakeTarget, task: str = "t1") -> LakeApplier:
    applier = LakeApplier(target, task, [plan(ORDERS), plan(ITEMS)])
    for batch in orders_batches():
        applier.apply(batch, str(batch[-1].end), idempotent=False)
    return applier


# -- layout, Op and timestamp columns -----------------------------------------------------


FIRST_COMMITS = (T0, T0 + timedelta(milliseconds=2000))  # of the two orders batches


@pytest.mark.parametrize(
    ("fmt", "header", "ext"),
    [("parquet", False, "parquet"), ("csv", False, "csv"), ("csv", True, "csv")],
)
def test_files_op_timestamp_and_rows(tmp_path: Path, fmt: str, header: bool, ext: str) -> None:
    target = lake(tmp_path, DataFormat=fmt, TimestampColumnName="commit_ts", AddColumnName=header)
    applier = run_orders(target)
    # a batch's files take its first commit's stamp, whichever table that commit touched
    assert names(target, ORDERS) == stamped(ext, *FIRST_COMMITS)
    assert names(target, ITEMS) == stamped(ext, *FIRST_COMMITS)
    orders = table(target, ORDERS)
    assert list(orders.changes[0].row) == ["order_id", "customer", "total", "placed"]
    assert [ops for _, ops in orders.ops()] == [["I", "I", "U", "I"], ["D", "U", "D"]]
    assert [c.commit for c in orders.changes if c.file == orders.cdc[0]] == [
        "2024-03-15 10:30:00.123456",
        "2024-03-15 10:30:00.123456",
        "2024-03-15 10:30:00.163456",
        "2024-03-15 10:30:00.164456",
    ]
    # the key change is a delete of the old key then the after-image; deletes carry the key
    assert in_file(orders, 1, "order_id", "customer", "total") == [
        ("D", 2, None, None),
        ("U", 20, "bob", Decimal("1.00")),
        ("D", 3, None, None),
    ]
    assert orders.rows == expected_orders()
    assert table(target, ITEMS).rows == [{"sku": "B-2", "qty": -7}]
    assert applier.read_checkpoint() == str(LSN(5 * 16))
    assert LakeApplier(target, "t1", []).read_checkpoint() == str(LSN(80))


def test_load_files_are_read_first(tmp_path: Path) -> None:
    """The full-load writer's LOAD file, then the CDC files: the final table. The LOAD
    file already holds order 2, which the changes insert again, as after a full load
    without a shared snapshot (the README's catch-up): read leniently."""
    target = lake(tmp_path, DataFormat="parquet", IncludeOpForFullLoad=True)
    target.prepare(ORDERS, PrepMode.DROP_AND_CREATE)
    writer = target.writer(ORDERS, None)
    rows = [{"order_id": 2, "customer": "old bob", "total": Decimal("5.00"), "placed": T0}]
    writer.write(pa.RecordBatch.from_pylist(rows, schema=ORDERS.arrow_schema()))
    writer.close()
    run_orders(target)
    orders = table(target, ORDERS, lenient=True)
    assert [r.row["customer"] for r in orders.load_rows] == ["old bob"]
    assert orders.rows == expected_orders()
    assert all_files(target)[-3:] == [
        f"public/orders/{n}" for n in [*stamped("parquet", *FIRST_COMMITS), "LOAD00000001.parquet"]
    ]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_many_types_written_as_the_full_load_writes_them(tmp_path: Path, fmt: str) -> None:
    settings = {"DataFormat": fmt, "AddColumnName": "true"}
    load, cdc = lake(tmp_path / "load", **settings), lake(tmp_path / "cdc", **settings)
    nulls = {"id": 2}
    batch = pa.RecordBatch.from_pylist([KINDS_ROW, nulls], schema=KINDS.arrow_schema())
    load.prepare(KINDS, PrepMode.DROP_AND_CREATE)
    writer = load.writer(KINDS, None)
    writer.write(batch)
    writer.close()
    applier = LakeApplier(cdc, "t", [plan(KINDS)])
    applier.apply([txn(1, 0, ins(KINDS, **KINDS_ROW), ins(KINDS, **nulls))], "0/10", False)
    loaded, changed = table(load, KINDS), table(cdc, KINDS)
    assert [c.op for c in changed.changes] == ["I", "I"]
    # the CDC rows are the full load's rows, value for value
    assert [c.row for c in changed.changes] == [r.row for r in loaded.load_rows]
    if fmt == "csv":
        load_text = Path(tmp_path / "load/lake" / loaded.loads[0]).read_text()
        cdc_text = Path(tmp_path / "cdc/lake" / changed.cdc[0]).read_text()
        load_rows = list(csv.reader(io.StringIO(load_text)))
        assert list(csv.reader(io.StringIO(cdc_text))) == [
            ["Op", *load_rows[0]],
            *(["I", *row] for row in load_rows[1:]),
        ]
        assert cdc_text.split("\n", 1)[1].startswith('"I",9007199254740993,true,-32768,1.5,')
        row = changed.rows[1]
        assert (row["bin"], row["u"], row["txt"]) == (
            "00ff62696e10",
            KINDS_ROW["u"],
            KINDS_ROW["txt"],
        )
        assert changed.rows[0] == {"id": "2", **{c.name: None for c in KINDS.columns[1:]}}
    else:
        schemas = [
            pq.read_schema(tmp_path / d / "lake" / p)
            for d, p in (("load", loaded.loads[0]), ("cdc", changed.cdc[0]))
        ]
        assert schemas[1].remove(0) == schemas[0]
        # README: in Parquet an interval is ISO 8601 text (P<months>M<days>DT<seconds>S)
        row = {**canon(KINDS, KINDS_ROW), "iv": "P14M3DT3600.000001S"}
        assert changed.rows == [canon(KINDS, nulls), row]


def test_headerless_gzip_csv_with_custom_delimiter_and_null(tmp_path: Path) -> None:
    target = lake(
        tmp_path, DataFormat="csv", CompressionType="GZIP", CsvDelimiter="|", CsvNullValue="NULL"
    )
    applier = LakeApplier(target, "t", [plan(ORDERS)])
    changes = [
        ins(ORDERS, order_id=7, customer="", total=None, placed=T0),
        ins(ORDERS, order_id=8, customer="NULL", total=Decimal("0.00"), placed=T0),
    ]
    applier.apply([txn(1, 0, *changes)], "0/10", False)
    assert names(target, ORDERS) == stamped("csv.gz", T0)
    text = gzip.decompress((tmp_path / "lake" / table(target, ORDERS).cdc[0]).read_bytes()).decode()
    assert text.splitlines() == [
        '"I"|7|""|NULL|2024-03-15 10:30:00.123456Z',
        '"I"|8|"NULL"|"0.00"|2024-03-15 10:30:00.123456Z',  # decimals as the full load: text
    ]
    got = table(target, ORDERS).rows
    assert [(r["customer"], r["total"]) for r in got] == [("", None), ("NULL", Decimal("0.00"))]


# -- deletes, unchanged TOAST, truncate, no key ---------------------------------------------


def test_unchanged_toast_is_null_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = lake(tmp_path, DataFormat="parquet")
    applier = LakeApplier(target, "t", [plan(ORDERS)])
    batch = [
        txn(1, 0, ins(ORDERS, order_id=1, customer="long text", total=Decimal("1.00"), placed=T0)),
        txn(2, 1, upd(ORDERS, order_id=1, customer=UNCHANGED, total=Decimal("2.00"), placed=T0)),
        txn(3, 2, upd(ORDERS, order_id=1, customer=UNCHANGED, total=Decimal("3.00"), placed=T0)),
    ]
    with caplog.at_level(logging.WARNING, logger="opendms.lake.cdc"):
        applier.apply(batch, "0/30", False)
    warnings = [r.getMessage() for r in caplog.records if "did not carry" in r.getMessage()]
    assert len(warnings) == 1 and "public.orders" in warnings[0] and "customer" in warnings[0]
    assert in_file(table(target, ORDERS), 0, "customer", "total") == [
        ("I", "long text", Decimal("1.00")),
        ("U", None, Decimal("2.00")),
        ("U", None, Decimal("3.00")),
    ]


NOSUP = {"UseCsvNoSupValue": "true", "CsvNoSupValue": "NS"}


def _toast_batch() -> list[Transaction]:
    """An insert, then updates whose unchanged TOAST values the source did not send (a
    text column, and a timestamp column as a transformation's output could leave it)."""
    return [
        txn(1, 0, ins(ORDERS, order_id=1, customer="NS", total=Decimal("1.00"), placed=T0)),
        txn(
            2, 1, upd(ORDERS, order_id=1, customer=UNCHANGED, total=Decimal("2"), placed=UNCHANGED)
        ),
        txn(3, 2, upd(ORDERS, order_id=1, customer=UNCHANGED, total=None, placed=T0)),
        txn(4, 3, upd(ORDERS, order_id=1, customer=None, total=Decimal("4"), placed=UNCHANGED)),
    ]


@pytest.mark.parametrize(
    ("settings", "lines"),
    [
        (
            {},
            [
                '"I",1,"NS","1.00",2024-03-15 10:30:00.123456Z',
                '"U",1,NS,"2.00",NS',
                '"U",1,NS,,2024-03-15 10:30:00.123456Z',
                '"U",1,,"4.00",NS',
            ],
        ),
        (
            {"CsvNullValue": "NULL", "CsvDelimiter": "|", "CompressionType": "GZIP"},
            [
                '"I"|1|"NS"|"1.00"|2024-03-15 10:30:00.123456Z',
                '"U"|1|NS|"2.00"|NS',
                '"U"|1|NS|NULL|2024-03-15 10:30:00.123456Z',
                '"U"|1|NULL|"4.00"|NS',
            ],
        ),
    ],
)
def test_unchanged_toast_is_csv_no_sup_value(
    tmp_path: Path, settings: dict[str, str], lines: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """UseCsvNoSupValue with CsvNoSupValue: a value the source did not send is the
    CsvNoSupValue text, unquoted (a text value equal to it stays quoted); the reader keeps
    the row's value for it, the independent one and validation's replay alike."""
    from opendms.endpoints.lake.replay import replay

    target = lake(tmp_path, **NOSUP, **settings)
    applier = LakeApplier(target, "t", [plan(ORDERS)])
    with caplog.at_level(logging.WARNING, logger="opendms.lake.cdc"):
        applier.apply(_toast_batch(), "0/40", False)
    assert any("the lake gets CsvNoSupValue 'NS'" in r.getMessage() for r in caplog.records)
    got = table(target, ORDERS)
    data = (tmp_path / "lake" / got.cdc[0]).read_bytes()
    text = (gzip.decompress(data) if got.cdc[0].endswith(".gz") else data).decode()
    assert text.splitlines() == lines
    assert got.op_rows("customer", "placed") == [
        ("I", "NS", T0),
        ("U", NOT_SENT, NOT_SENT),
        ("U", NOT_SENT, T0),
        ("U", None, NOT_SENT),
    ]
    final = {"order_id": 1, "customer": None, "total": Decimal("4.00"), "placed": T0}
    assert got.rows == [final]
    options = lake_settings({**NOSUP, **settings})
    replayed = replay(
        target.storage, "public", "orders", ["order_id"], settings=options, model=ORDERS
    )
    assert replayed == [final]


def test_csv_no_sup_value_unquoted_rfc4180_off_and_in_transaction_files(tmp_path: Path) -> None:
    target = lake(tmp_path / "a", **NOSUP, Rfc4180="false")
    LakeApplier(target, "t", [plan(ORDERS)]).apply(_toast_batch()[1:2], "0/20", False)
    [path] = table(target, ORDERS, lenient=True).cdc
    assert (tmp_path / "a/lake" / path).read_text() == "U,1,NS,2.00,NS\n"
    txn_target = lake(
        tmp_path / "b", **NOSUP, DataFormat="parquet", PreserveTransactions="true", CdcPath="txn"
    )
    LakeApplier(txn_target, "t", [plan(ORDERS)]).apply(_toast_batch()[1:2], "0/20", False)
    [txn_file] = (tmp_path / "b/lake/txn").iterdir()
    assert txn_file.read_text() == '"U","orders","public",1,NS,"2.00",NS\n'


def test_csv_no_sup_value_does_nothing_in_parquet_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The setting applies to CSV CDC files (S3Settings API reference): Parquet files get
    NULL, and one warning says so."""
    from opendms.endpoints.lake import settings as module

    monkeypatch.setattr(module, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="opendms.endpoints"):
        target = lake(tmp_path, **NOSUP, DataFormat="parquet")
        lake(tmp_path / "again", **NOSUP, DataFormat="parquet")
    assert [r.getMessage() for r in caplog.records] == [
        "lake endpoint setting CsvNoSupValue has no effect in opendms: it applies to CSV CDC "
        "files; Parquet files hold NULL for values the source did not send"
    ]
    LakeApplier(target, "t", [plan(ORDERS)]).apply(_toast_batch(), "0/40", False)
    assert table(target, ORDERS).op_rows("customer", "placed") == [
        ("I", "NS", T0),
        ("U", None, None),
        ("U", None, T0),
        ("U", None, None),
    ]


def test_truncate_removes_the_table_files(tmp_path: Path) -> None:
    """As DMS does: a TRUNCATE removes the table's earlier LOAD and CDC files (the rows of
    the batch before it too); rows after it in the batch go to a new file."""
    target = lake(tmp_path, DataFormat="parquet")
    target.prepare(ITEMS, PrepMode.DROP_AND_CREATE)
    writer = target.writer(ITEMS, None)
    writer.write(pa.RecordBatch.from_pylist([{"sku": "loaded", "qty": 1}]))
    writer.close()
    applier = LakeApplier(target, "t", [plan(ITEMS), plan(ORDERS)])
    applier.apply([txn(1, 0, ins(ITEMS, sku="a", qty=1))], "0/10", False)
    order = ins(ORDERS, order_id=1, customer="c", total=Decimal("1.00"), placed=T0)
    truncate = Change(Op.TRUNCATE, "inventory", "items")
    batch = [txn(2, 1, ins(ITEMS, sku="b", qty=2), order, truncate, ins(ITEMS, sku="c", qty=3))]
    applier.apply(batch, "0/20", False)
    assert applier.truncates == {"inventory.items": 1}
    items = table(target, ITEMS)  # the LOAD file and the first batch's file are gone
    second = stamped("parquet", T0, T0 + timedelta(milliseconds=1))[1]
    assert items.ops() == [(second, ["I"])]
    assert items.rows == [{"sku": "c", "qty": 3}]
    assert [r["order_id"] for r in table(target, ORDERS).rows] == [1]


def test_table_without_key_deletes_by_whole_row(tmp_path: Path) -> None:
    nokey = Table("public", "nokey", (Column("a", C(Kind.INT32)), Column("b", C(Kind.STRING))))
    target = lake(tmp_path, DataFormat="parquet")
    applier = LakeApplier(target, "t", [plan(nokey)])
    old = {"a": 1, "b": "x"}
    batch = [
        txn(1, 0, ins(nokey, a=1, b="x"), ins(nokey, a=2, b="y")),
        txn(2, 1, upd(nokey, old, a=1, b="z")),  # REPLICA IDENTITY FULL: the old row is the key
        txn(3, 2, delete(nokey, a=2, b="y")),
    ]
    applier.apply(batch, "0/30", False)
    got = oracle(target, public__nokey=[])["public.nokey"]
    assert got.op_rows("a", "b") == [
        ("I", 1, "x"),
        ("I", 2, "y"),
        ("D", 1, "x"),  # an update of a row without a key: D of the old row, U of the new
        ("U", 1, "z"),
        ("D", 2, "y"),
    ]
    assert got.rows == [{"a": 1, "b": "z"}]


def test_unknown_tables_are_ignored_and_bad_values_name_the_table(tmp_path: Path) -> None:
    target = lake(tmp_path, DataFormat="parquet")
    applier = LakeApplier(target, "t", [plan(ORDERS)])
    applier.apply([txn(1, 0, ins(ITEMS, sku="x", qty=1))], "0/10", False)
    assert all_files(target) == ["_opendms/checkpoints/t.json"]
    with pytest.raises(DataError, match=r"public\.orders.*column order_id"):
        applier.apply([txn(2, 1, ins(ORDERS, order_id="not a number"))], "0/20", False)
    assert applier.read_checkpoint() == "0/10"


# -- CdcInsertsOnly / CdcInsertsAndUpdates ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("setting", "include_op", "ops"),
    [
        ("CdcInsertsOnly", False, None),
        ("CdcInsertsOnly", True, ["I", "I", "I"]),
        ("CdcInsertsAndUpdates", False, None),
        ("CdcInsertsAndUpdates", True, ["I", "I", "U", "I", "U"]),
    ],
)
def test_inserts_only_and_inserts_and_updates(
    tmp_path: Path, fmt: str, setting: str, include_op: bool, ops: list[str] | None
) -> None:
    """Without IncludeOpForFullLoad the CDC rows have no Op column (the reader takes them
    as inserts, or with CdcInsertsAndUpdates as inserts or updates)."""
    target = lake(tmp_path, DataFormat=fmt, IncludeOpForFullLoad=include_op, **{setting: "y"})
    run_orders(target)
    orders = table(target, ORDERS)
    assert list(orders.changes[0].row) == ["order_id", "customer", "total", "placed"]
    if ops is not None:
        assert [c.op for c in orders.changes] == ops
    kept = [c.row["order_id"] for c in orders.changes]
    assert kept == ([1, 2, 3] if setting == "CdcInsertsOnly" else [1, 2, 1, 3, 20])
    got = orders.rows
    if setting == "CdcInsertsAndUpdates":  # deletes are not in the lake: rows 2 and 3 stay
        assert [r["order_id"] for r in got] == [1, 2, 3, 20]
        assert got[0]["total"] == Decimal("11.00")
    else:
        assert [(r["order_id"], r["total"]) for r in got] == [
            (1, Decimal("10.50")),
            (2, Decimal("-0.01")),
            (3, None),
        ]


# -- date partitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "delimiter", "folder"),
    [
        (None, None, "2024/03/15"),
        ("YYYYMMDDHH", "SLASH", "2024/03/15/10"),
        ("YYYYMM", "DASH", "2024-03"),
        ("MMYYYYDD", "UNDERSCORE", "03_2024_15"),
        ("DDMMYYYY", "NONE", "15032024"),
    ],
)
def test_date_partition_folders(
    tmp_path: Path, sequence: str | None, delimiter: str | None, folder: str
) -> None:
    settings: dict[str, Any] = {"DataFormat": "parquet", "DatePartitionEnabled": "true"}
    if sequence:
        settings.update(DatePartitionSequence=sequence, DatePartitionDelimiter=delimiter)
    target = lake(tmp_path, **settings)
    run_orders(target)
    assert names(target, ORDERS) == [f"{folder}/{n}" for n in stamped("parquet", *FIRST_COMMITS)]
    assert table(target, ORDERS).rows == expected_orders()


def test_date_partition_timezone_and_day_change(tmp_path: Path) -> None:
    """Folder and file name in the partition zone; files sort by name across folders."""
    target = lake(
        tmp_path,
        DataFormat="parquet",
        DatePartitionEnabled="true",
        DatePartitionSequence="DDMMYYYY",
        DatePartitionTimezone="Asia/Seoul",
        TimestampColumnName="ts",
    )
    applier = LakeApplier(target, "t", [plan(ITEMS)])
    late = datetime(2024, 3, 31, 14, 59, 59, 999000, tzinfo=UTC)  # Seoul: 23:59:59.999
    batches = [
        Transaction(1, late, LSN(16), [ins(ITEMS, sku="a", qty=1)]),
        Transaction(2, late + timedelta(seconds=1), LSN(32), [upd(ITEMS, sku="a", qty=2)]),
    ]
    for t in batches:
        applier.apply([t], str(t.end), False)
    seoul = [t.commit_time.astimezone(ZoneInfo("Asia/Seoul")) for t in batches]
    assert names(target, ITEMS) == [
        f"{when:%d/%m/%Y}/{name}"
        for when, name in zip(seoul, stamped("parquet", *seoul), strict=True)
    ]
    assert names(target, ITEMS)[0] == "31/03/2024/20240331-235959999.parquet"
    items = table(target, ITEMS)
    assert items.changes[0].commit == "2024-03-31 14:59:59.999000"  # UTC commit time
    assert items.rows == [{"sku": "a", "qty": 2}]


# -- names, batches, checkpoints ----------------------------------------------------------------


def test_stamps_never_collide_and_stay_ordered(tmp_path: Path) -> None:
    target = lake(tmp_path, DataFormat="csv")
    applier = LakeApplier(target, "t", [plan(ITEMS)])
    same_ms = T0.replace(microsecond=123999)
    earlier = T0 - timedelta(seconds=5)  # a source clock step back
    for n, when in enumerate([T0, same_ms, earlier], start=1):
        t = Transaction(n, when, LSN(16 * n), [ins(ITEMS, sku=f"s{n}", qty=n)])
        applier.apply([t], str(t.end), False)
    assert names(target, ITEMS) == stamped("csv", T0, same_ms, earlier)
    assert stamped("csv", T0, same_ms, earlier)[1:] == [
        "20240315-103000124.csv",  # the same millisecond as the first: one later
        "20240315-103000125.csv",  # earlier than the last: one later than it
    ]
    assert table(target, ITEMS).op_rows("sku") == [("I", "s1"), ("I", "s2"), ("I", "s3")]


def test_batch_hint_and_one_file_per_table_per_batch(tmp_path: Path) -> None:
    assert LakeApplier(lake(tmp_path / "a"), "t", []).batch_hint() == (60.0, 32000 * 1024)
    target = lake(tmp_path / "b", cdcMaxBatchinterval="120", CdcMinFileSize="64")
    applier = LakeApplier(target, "t", [plan(ITEMS), plan(ORDERS)])
    assert applier.batch_hint() == (120.0, 64 * 1024)
    many = [txn(n, n, ins(ITEMS, sku=f"k{n}", qty=n)) for n in range(1, 201)]
    assert applier.apply(many[:150], str(many[149].end), False) == 150
    assert applier.apply(many[150:], str(many[-1].end), False) == 50
    first_commits = (many[0].commit_time, many[150].commit_time)
    assert names(target, ITEMS) == stamped("csv", *first_commits)
    assert names(target, ORDERS) == []
    items = table(target, ITEMS)
    assert [len(ops) for _, ops in items.ops()] == [150, 50]
    assert [(r["sku"], r["qty"]) for r in items.rows] == sorted((f"k{n}", n) for n in range(1, 201))


def test_write_checkpoint_and_empty_batches(tmp_path: Path) -> None:
    target = lake(tmp_path)
    applier = LakeApplier(target, "my task/1", [plan(ITEMS)])
    assert applier.read_checkpoint() is None and applier.must_flush_at() is None
    applier.write_checkpoint("0/100")
    assert all_files(target) == ["_opendms/checkpoints/my%20task%2F1.json"]
    assert (
        applier.apply([txn(9, 0, Change(Op.TRUNCATE, "inventory", "items"))], "0/200", False) == 1
    )
    assert LakeApplier(target, "my task/1", []).read_checkpoint() == "0/200"
    assert all_files(target) == ["_opendms/checkpoints/my%20task%2F1.json"]


# -- DDL ----------------------------------------------------------------------------------------


def test_ddl_changes_the_file_columns(tmp_path: Path) -> None:
    target = lake(tmp_path, DataFormat="parquet")
    applier = LakeApplier(target, "t", [plan(ITEMS)])
    add = Change(
        Op.DDL,
        "inventory",
        "items",
        ddl=(ColumnChange("add", "price", C(Kind.DECIMAL, precision=8, scale=2)),),
    )
    applier.apply(
        [
            txn(1, 0, ins(ITEMS, sku="a", qty=1)),
            txn(2, 1, add),
            txn(3, 2, ins(ITEMS, sku="b", qty=2, price=Decimal("9.99"))),
        ],
        "0/30",
        False,
    )
    rename = ColumnChange("rename", "qty", new_name="quantity")
    retype = ColumnChange("alter_type", "quantity", C(Kind.INT64))
    drop = ColumnChange("drop", "price")
    ddl = Change(Op.DDL, "inventory", "items", ddl=(rename, retype, drop))
    applier.apply(
        [txn(4, 10, ddl), txn(5, 11, upd(ITEMS, sku="a", quantity=10_000_000_000))], "0/50", False
    )
    # one file per column set within a batch, at consecutive stamps from the batch's stamp
    first = next_stamp(T0, None)
    second = next_stamp(T0 + timedelta(milliseconds=1), first)
    third = next_stamp(T0 + timedelta(milliseconds=10), second)
    assert names(target, ITEMS) == [f"{s}.parquet" for s in (first, second, third)]
    items = table(target, ITEMS)
    assert [next(list(c.row) for c in items.changes if c.file == p) for p in items.cdc] == [
        ["sku", "qty"],
        ["sku", "qty", "price"],
        ["sku", "quantity"],
    ]
    assert pq.read_schema(tmp_path / "lake" / items.cdc[2]).field("quantity").type == pa.int64()
    assert items.rows == [
        {"sku": "a", "quantity": 10_000_000_000},
        {"sku": "b", "qty": 2, "price": Decimal("9.99")},
    ]
    # the engine's updated plan wins for later batches (here: a renamed target column)
    new_target = Table(
        "inventory", "items", (Column("sku", C(Kind.STRING)), Column("q", C(Kind.INT64)))
    )
    source = Table(
        "inventory", "items", (Column("sku", C(Kind.STRING)), Column("quantity", C(Kind.INT64)))
    )
    applier.schema_changed(ApplyPlan(source, new_target, {"sku": "sku", "quantity": "q"}))
    applier.apply([txn(6, 20, ins(ITEMS, sku="c", quantity=3))], "0/60", False)
    assert table(target, ITEMS).op_rows("sku", "q")[-1] == ("I", "c", 3)
    assert list(table(target, ITEMS).changes[-1].row) == ["sku", "q"]


# -- crash and retry ----------------------------------------------------------------------------


def crash_batch() -> list[Transaction]:
    return [
        txn(1, 0, ins(ORDERS, order_id=1, customer="a", total=Decimal("1.00"), placed=T0)),
        txn(
            2,
            5,
            ins(ITEMS, sku="x", qty=1),
            upd(ORDERS, order_id=1, customer="b", total=None, placed=T0),
        ),
    ]


def crash_after_first_file(applier: LakeApplier, monkeypatch: pytest.MonkeyPatch) -> None:
    real = applier._write
    written: list[str] = []

    def write(job: Any) -> None:
        if written:
            raise RuntimeError("simulated crash")
        written.append(job.path)
        real(job)

    monkeypatch.setattr(applier, "_write", write)


def check_retry(target_factory: Any, monkeypatch: pytest.MonkeyPatch, partial: bool) -> None:
    target = target_factory()
    batch, end = crash_batch(), str(LSN(32))
    applier = LakeApplier(target, "t", [plan(ORDERS), plan(ITEMS)])
    applier.write_checkpoint("0/1")
    crash_after_first_file(applier, monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        applier.apply(batch, end, False)
    expected = [
        "_opendms/checkpoints/t.json",
        "inventory/items/20240315-103000123.parquet",
        "public/orders/20240315-103000123.parquet",
    ]
    assert all_files(target) == [expected[0], expected[2]]  # items never got written
    if partial:  # torn files (what a crash mid-write could leave) at the next name
        storage = target.storage
        torn = [storage.path(expected[1])]
        if not storage.atomic_put:
            storage.fs.create_dir(storage.path("inventory/items"), recursive=True)
            torn.append(torn[0] + ".tmp")
        for path in torn:
            with storage.fs.open_output_stream(path) as out:
                out.write(b"PAR1 torn")
    retry_target = target_factory()
    retry = LakeApplier(retry_target, "t", [plan(ORDERS), plan(ITEMS)])
    assert retry.read_checkpoint() == "0/1"
    assert retry.must_flush_at() == end
    retry.apply(batch, end, False)
    assert retry.must_flush_at() is None and retry.read_checkpoint() == end
    assert all_files(retry_target) == expected
    lake = oracle(retry_target)
    assert lake["public.orders"].op_rows("order_id", "customer") == [("I", 1, "a"), ("U", 1, "b")]
    assert lake["public.orders"].rows == [
        {"order_id": 1, "customer": "b", "total": None, "placed": T0}
    ]
    assert lake["inventory.items"].rows == [{"sku": "x", "qty": 1}]


@pytest.mark.parametrize("partial", [False, True])
def test_crash_mid_batch_rewrites_the_same_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: bool
) -> None:
    check_retry(lambda: lake(tmp_path, DataFormat="parquet"), monkeypatch, partial)


def test_crash_after_files_before_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = lake(tmp_path, DataFormat="csv")
    applier = LakeApplier(target, "t", [plan(ORDERS), plan(ITEMS)])
    batch, end = crash_batch(), "0/20"
    saves = 0
    real = applier.store.save

    def save(checkpoint: Any) -> None:
        nonlocal saves
        saves += 1
        if saves == 2:  # the pending marker got written, the files too, not the final one
            raise OSError("simulated crash")
        real(checkpoint)

    monkeypatch.setattr(applier.store, "save", save)
    with pytest.raises(Exception, match="simulated crash"):
        applier.apply(batch, end, False)
    before = all_files(target)
    retry = LakeApplier(lake(tmp_path, DataFormat="csv"), "t", [plan(ORDERS), plan(ITEMS)])
    assert retry.must_flush_at() == end and retry.read_checkpoint() is None
    retry.apply(batch, end, False)
    assert all_files(target) == before
    assert table(target, ORDERS).ops() == [(n, ["I", "U"]) for n in stamped("csv", T0)]


def test_retry_with_a_shorter_batch_drops_stale_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = lake(tmp_path, DataFormat="parquet")
    applier = LakeApplier(target, "t", [plan(ORDERS), plan(ITEMS)])
    batch = crash_batch()
    crash_after_first_file(applier, monkeypatch)
    with pytest.raises(RuntimeError):
        applier.apply(batch, "0/20", False)
    retry = LakeApplier(target, "t", [plan(ORDERS), plan(ITEMS)])
    retry.apply(batch[:1], "0/10", False)  # the engine ended earlier this time
    first = next_stamp(T0, None)
    assert all_files(target) == [
        "_opendms/checkpoints/t.json",
        f"public/orders/{first}.parquet",
    ]
    assert table(target, ORDERS).ops() == [(f"{first}.parquet", ["I"])]
    retry.apply(batch[1:], "0/20", False)
    second = next_stamp(batch[1].commit_time, first)
    assert names(target, ITEMS) == [f"{second}.parquet"]


def test_crash_pending_dropped_by_a_new_full_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = lake(tmp_path, DataFormat="parquet")
    applier = LakeApplier(target, "t", [plan(ORDERS), plan(ITEMS)])
    crash_after_first_file(applier, monkeypatch)
    with pytest.raises(RuntimeError):
        applier.apply(crash_batch(), "0/20", False)
    fresh = LakeApplier(target, "t", [])
    fresh.write_checkpoint("0/99")
    assert fresh.must_flush_at() is None
    assert all_files(target) == ["_opendms/checkpoints/t.json"]


# -- S3 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_s3_files_and_rows(s3_url: str, fmt: str) -> None:
    target = _open(
        s3_url, {"DataFormat": fmt, "TimestampColumnName": "ts", "DatePartitionEnabled": "true"}
    )
    run_orders(target)
    assert names(target, ORDERS) == [f"2024/03/15/{n}" for n in stamped(fmt, *FIRST_COMMITS)]
    assert "_opendms/checkpoints/t1.json" in all_files(target)
    assert table(target, ORDERS).rows == expected_orders()
    assert target.storage.atomic_put
    assert LakeApplier(target, "t1", []).read_checkpoint() == str(LSN(80))


def test_s3_crash_retry(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    check_retry(lambda: _open(s3_url, {"DataFormat": "parquet"}), monkeypatch, True)


def test_settings_defaults() -> None:
    settings = LakeSettings()
    assert (settings.CdcMaxBatchInterval, settings.CdcMinFileSize) == (60, 32000)
    assert not settings.CdcInsertsOnly and not settings.CdcInsertsAndUpdates
    assert (settings.DatePartitionSequence, settings.DatePartitionDelimiter) == (
        "YYYYMMDD",
        "SLASH",
    )
