"""The independent lake reader (tests/oracles) on lakes written by hand: it reads every
file, refuses names and places the rules do not allow, and folds by Op with I, U and D
told apart."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.oracles.lake import LakeError, read_lake
from tests.oracles.lakefiles import (
    NOT_SENT,
    batch_stamps,
    csv_records,
    load_name,
    next_stamp,
)

KEY = {"s.t": ["id"]}


def _parquet(root: Path, rel: str, rows: list[dict[str, Any]]) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


def _load(root: Path, *ids: int, name: str = "LOAD00000001.parquet") -> None:
    _parquet(root, f"s/t/{name}", [{"id": i, "v": f"v{i}"} for i in ids])


def _cdc(root: Path, stamp: str, *rows: tuple[str, int, str | None]) -> None:
    _parquet(root, f"s/t/{stamp}.parquet", [{"Op": o, "id": i, "v": v} for o, i, v in rows])


PARQUET = "DataFormat=parquet"


def test_load_then_cdc_in_name_order(tmp_path: Path) -> None:
    _load(tmp_path, 1, 2, 3)
    _cdc(tmp_path, "20240101-000000002", ("D", 2, "v2"), ("I", 4, "x"))
    _cdc(tmp_path, "20240101-000000001", ("U", 1, "one"))
    (tmp_path / "_opendms/checkpoints").mkdir(parents=True)
    (tmp_path / "_opendms/checkpoints/t.json").write_text("{}")
    lake = read_lake(tmp_path, PARQUET, keys=KEY)
    table = lake["s.t"]
    assert table.rows == [{"id": 1, "v": "one"}, {"id": 3, "v": "v3"}, {"id": 4, "v": "x"}]
    assert table.ops() == [
        ("20240101-000000001.parquet", ["U"]),
        ("20240101-000000002.parquet", ["D", "I"]),
    ]
    assert table.op_rows("id") == [("U", 1), ("D", 2), ("I", 4)]
    assert "_opendms/checkpoints/t.json" not in lake.files


@pytest.mark.parametrize(
    "name",
    [
        "x.parquet",
        "LOAD1.parquet",
        "LOAD0000000a.parquet",
        "20240101-00000000.parquet",
        "LOAD00000002.csv",
        "segment1_LOAD00000001.parquet",
        "LOAD00000002.parquet.tmp",
    ],
)
def test_a_file_of_another_name_fails(tmp_path: Path, name: str) -> None:
    _load(tmp_path, 1)
    (tmp_path / "s/t" / name).write_bytes(b"whatever")
    with pytest.raises(LakeError, match=f"s/t/{name}"):
        read_lake(tmp_path, PARQUET, keys=KEY)


def test_files_outside_a_table_folder_or_in_a_wrong_folder_fail(tmp_path: Path) -> None:
    _load(tmp_path, 1)
    (tmp_path / "s/stray.parquet").write_bytes(b"x")
    with pytest.raises(LakeError, match="outside any <schema>/<table>/ folder"):
        read_lake(tmp_path, PARQUET, keys=KEY)
    (tmp_path / "s/stray.parquet").unlink()
    _cdc(tmp_path, "2024/01/01/20240101-000000001", ("I", 5, "x"))
    with pytest.raises(LakeError, match="expected in the folder 'of the table'"):
        read_lake(tmp_path, PARQUET, keys=KEY)
    with pytest.raises(LakeError, match="expected in the folder '01012024'"):
        read_lake(
            tmp_path,
            f"{PARQUET};DatePartitionEnabled=y;DatePartitionSequence=DDMMYYYY;"
            "DatePartitionDelimiter=NONE",
            keys=KEY,
        )
    lake = read_lake(tmp_path, f"{PARQUET};DatePartitionEnabled=true", keys=KEY)
    assert lake["s.t"].cdc_names() == ["2024/01/01/20240101-000000001.parquet"]


def test_date_folders_are_read_in_stamp_order(tmp_path: Path) -> None:
    _load(tmp_path, 1)
    _parquet(
        tmp_path, "s/t/31-03-2024/20240331-235959999.parquet", [{"Op": "U", "id": 1, "v": "a"}]
    )
    _parquet(
        tmp_path, "s/t/01-04-2024/20240401-000000999.parquet", [{"Op": "U", "id": 1, "v": "b"}]
    )
    settings = f"{PARQUET};DatePartitionEnabled=true;DatePartitionSequence=DDMMYYYY;"
    lake = read_lake(tmp_path, settings + "DatePartitionDelimiter=DASH", keys=KEY)
    assert lake["s.t"].rows == [{"id": 1, "v": "b"}]


def test_load_counters_are_hex_and_without_gaps(tmp_path: Path) -> None:
    for n in range(1, 12):
        _load(tmp_path, n, name=load_name(n, "parquet"))
    table = read_lake(tmp_path, PARQUET, keys=KEY)["s.t"]
    assert [p.rsplit("/", 1)[-1] for p in table.loads][8:] == [
        "LOAD00000009.parquet",
        "LOAD0000000A.parquet",
        "LOAD0000000B.parquet",
    ]
    (tmp_path / "s/t/LOAD00000005.parquet").unlink()
    with pytest.raises(LakeError, match="LOAD counters do not run"):
        read_lake(tmp_path, PARQUET, keys=KEY)


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ([("I", 1, "again")], "an I of key \\(1,\\), which the table holds"),
        ([("U", 9, "x")], "a U of key \\(9,\\), which the table does not hold"),
        ([("D", 9, None)], "a D of key \\(9,\\), which the table does not hold"),
        ([("D", 1, "other")], "the D row has v='other', the row it deletes 'v1'"),
        ([("D", 1, None), ("U", 1, "same key")], "a U of key \\(1,\\)"),
    ],
)
def test_strict_folding(
    tmp_path: Path, rows: list[tuple[str, int, str | None]], error: str
) -> None:
    _load(tmp_path, 1)
    _cdc(tmp_path, "20240101-000000001", *rows)
    with pytest.raises(LakeError, match=error):
        read_lake(tmp_path, PARQUET, keys=KEY)


def test_lenient_folding_is_an_upsert(tmp_path: Path) -> None:
    _load(tmp_path, 1)
    _cdc(tmp_path, "20240101-000000001", ("I", 1, "again"), ("U", 9, "x"), ("D", 7, None))
    table = read_lake(tmp_path, PARQUET, keys=KEY, lenient=True)["s.t"]
    assert table.rows == [{"id": 1, "v": "again"}, {"id": 9, "v": "x"}]


def test_a_key_change_is_a_d_then_the_u_of_the_new_key(tmp_path: Path) -> None:
    _load(tmp_path, 1)
    _cdc(tmp_path, "20240101-000000001", ("D", 1, None), ("U", 10, "moved"))
    assert read_lake(tmp_path, PARQUET, keys=KEY)["s.t"].rows == [{"id": 10, "v": "moved"}]
    _cdc(tmp_path, "20240101-000000002", ("D", 10, None), ("I", 0, "x"), ("U", 11, "y"))
    with pytest.raises(LakeError, match="a U of key \\(11,\\)"):
        read_lake(tmp_path, PARQUET, keys=KEY)


def test_commit_times_never_go_back(tmp_path: Path) -> None:
    loaded = {"ts": "2024-01-01 09:00:00.000000", "id": 1, "v": "v1"}
    _parquet(tmp_path, "s/t/LOAD00000001.parquet", [loaded])
    for stamp, when in (("20240101-000000001", "10:00:01"), ("20240101-000000002", "10:00:00")):
        row = {"Op": "U", "ts": f"2024-01-01 {when}.000000", "id": 1, "v": when}
        _parquet(tmp_path, f"s/t/{stamp}.parquet", [row])
    settings = f"{PARQUET};TimestampColumnName=ts"
    with pytest.raises(LakeError, match="files out of commit order"):
        read_lake(tmp_path, settings, keys=KEY)
    assert read_lake(tmp_path, settings, keys=KEY, lenient=True)["s.t"].rows[0]["v"] == "10:00:00"


def test_a_table_without_a_key_is_a_multiset(tmp_path: Path) -> None:
    _load(tmp_path, 1, 1, 2)
    _cdc(tmp_path, "20240101-000000001", ("D", 1, "v1"), ("U", 1, "z"), ("D", 2, "v2"))
    rows = read_lake(tmp_path, PARQUET, keys={"s.t": ()})["s.t"].rows
    assert rows == [{"id": 1, "v": "v1"}, {"id": 1, "v": "z"}]
    _cdc(tmp_path, "20240101-000000002", ("U", 1, "w"))
    with pytest.raises(LakeError, match="a U of a table without a key"):
        read_lake(tmp_path, PARQUET, keys={"s.t": ()})


def test_csv_quoted_text_is_never_null(tmp_path: Path) -> None:
    folder = tmp_path / "s/t"
    folder.mkdir(parents=True)
    (folder / "LOAD00000001.csv.gz").write_bytes(
        gzip.compress(b'1|""|NULL\n2|"NULL"|"a ""q""|\nb"\n')
    )
    lake = read_lake(
        tmp_path,
        "CompressionType=GZIP;CsvDelimiter=|;CsvNullValue=NULL",
        keys=KEY,
        columns=["id", "v", "w"],
        parse={"id": int},
    )
    assert lake["s.t"].rows == [
        {"id": 1, "v": "", "w": None},
        {"id": 2, "v": "NULL", "w": 'a "q"|\nb'},
    ]
    (folder / "20240101-000000001.csv").write_text('Op,id,v,w\n"D",1,,\n')
    with pytest.raises(LakeError, match=r"expected the extension \.csv\.gz"):
        read_lake(tmp_path, "CompressionType=GZIP", keys=KEY, columns=["id", "v", "w"])


def test_csv_header_and_leading_columns(tmp_path: Path) -> None:
    folder = tmp_path / "s/t"
    folder.mkdir(parents=True)
    (folder / "LOAD00000001.csv").write_text("id,v\n1,a\n")
    (folder / "20240101-000000001.csv").write_text('Op,id,v\n"U",1,b\n')
    table = read_lake(tmp_path, "AddColumnName=true", keys=KEY)["s.t"]
    assert table.rows == [{"id": "1", "v": "b"}]
    with pytest.raises(LakeError, match=r"LOAD00000001\.csv: expected leading columns \['Op'\]"):
        read_lake(tmp_path, "AddColumnName=true;IncludeOpForFullLoad=true", keys=KEY)
    assert csv_records("a,,\n", ",", "\n", "f") == [[("a", False), ("", False), ("", False)]]


def test_op_letters_follow_the_cdc_settings(tmp_path: Path) -> None:
    _parquet(tmp_path, "s/t/LOAD00000001.parquet", [{"Op": "I", "id": 1, "v": "v1"}])
    _cdc(tmp_path, "20240101-000000001", ("U", 1, "x"))
    with pytest.raises(LakeError, match="Op 'U', expected one of \\['I'\\]"):
        read_lake(tmp_path, f"{PARQUET};CdcInsertsOnly=true;IncludeOpForFullLoad=true", keys=KEY)


def test_stamp_and_counter_rules() -> None:
    t0 = datetime(2024, 3, 15, 10, 30, 0, 123456, tzinfo=UTC)
    assert next_stamp(t0, None) == "20240315-103000123"
    assert next_stamp(t0, "20240315-103000123") == "20240315-103000124"
    assert batch_stamps([t0, t0, t0.replace(second=1)]) == [
        "20240315-103000123",
        "20240315-103000124",
        "20240315-103001123",
    ]
    assert [load_name(n, "csv") for n in (9, 10, 16)] == [
        "LOAD00000009.csv",
        "LOAD0000000A.csv",
        "LOAD00000010.csv",
    ]
    assert load_name(3, "parquet", segment=2) == "SEGMENT2_LOAD00000003.parquet"


def test_lenient_by_table_and_updates_without_deletes(tmp_path: Path) -> None:
    """Lenient folding for the named tables only; with CdcInsertsAndUpdates (no D rows)
    a key change is only the U of the new key, which may find no row."""
    _load(tmp_path, 1)
    _parquet(tmp_path, "s/u/LOAD00000001.parquet", [{"id": 1, "v": "v1"}])
    for table in ("t", "u"):
        rows = [{"Op": "U", "id": 9, "v": "x"}]
        _parquet(tmp_path, f"s/{table}/20240101-000000001.parquet", rows)
    keys = {"s.t": ["id"], "s.u": ["id"]}
    with pytest.raises(LakeError, match=r"s/u/20240101-000000001\.parquet row 0"):
        read_lake(tmp_path, PARQUET, keys=keys, lenient=["s.t"])
    lake = read_lake(tmp_path, PARQUET, keys=keys, lenient=["s.t", "s.u"])
    assert [r["id"] for r in lake["s.u"].rows] == [1, 9]
    inserts_and_updates = f"{PARQUET};CdcInsertsAndUpdates=true;IncludeOpForFullLoad=true"
    _parquet(tmp_path, "s/t/LOAD00000001.parquet", [{"Op": "I", "id": 1, "v": "v1"}])
    _parquet(tmp_path, "s/u/LOAD00000001.parquet", [{"Op": "I", "id": 1, "v": "v1"}])
    lake = read_lake(tmp_path, inserts_and_updates, keys=keys)
    assert [r["id"] for r in lake["s.t"].rows] == [1, 9]


def test_csv_cdc_value_not_sent_keeps_the_row_value(tmp_path: Path) -> None:
    """UseCsvNoSupValue with CsvNoSupValue: the unquoted marker in a CSV CDC file is a
    value the source did not send (the row keeps its value); quoted, it is text; without
    both settings, or when it is the null value, it is not such a value."""
    folder = tmp_path / "s/t"
    folder.mkdir(parents=True)
    (folder / "LOAD00000001.csv").write_text('1,"a",x\n2,"b",y\n3,"c",z\n')
    (folder / "20240101-000000001.csv").write_text('"U",1,"?",?\n"U",2,?,"?"\n')
    settings, cols, parse = "UseCsvNoSupValue=true;CsvNoSupValue=?", ["id", "v", "w"], {"id": int}
    for other in ("CsvNoSupValue=?", "UseCsvNoSupValue=true", f"{settings};CsvNullValue=?"):
        rows = read_lake(tmp_path, other, keys=KEY, columns=cols, parse=parse)["s.t"].rows
        assert NOT_SENT not in [v for r in rows for v in r.values()], other
    (folder / "20240101-000000002.csv").write_text('"D",3,?,\n"U",30,?,?\n')
    table = read_lake(tmp_path, settings, keys=KEY, columns=cols, parse=parse)["s.t"]
    assert table.op_rows("v", "w") == [
        ("U", "?", NOT_SENT),
        ("U", NOT_SENT, "?"),
        ("D", NOT_SENT, None),
        ("U", NOT_SENT, NOT_SENT),
    ]
    assert table.rows == [
        {"id": 1, "v": "?", "w": "x"},
        {"id": 2, "v": "b", "w": "?"},
        {"id": 30, "v": "c", "w": "z"},  # a key change: the deleted row's values
    ]
    (folder / "20240101-000000003.csv").write_text('"I",4,?,"w"\n')
    with pytest.raises(LakeError, match=r"an I without the value of \['v'\]"):
        read_lake(tmp_path, settings, keys=KEY, columns=cols, parse=parse)


def test_named_segments_write_to_their_folders(tmp_path: Path) -> None:
    """ranges with segment-names: LOAD files in a folder per segment name, each counting
    from 1, read in the order of the names; any other place or name fails."""
    names = {"s.t": ["low", "high"]}
    _load(tmp_path, 3, 4, name="high/LOAD00000001.parquet")
    _load(tmp_path, 1, name="low/LOAD00000001.parquet")
    _load(tmp_path, 2, name="low/LOAD00000002.parquet")
    _cdc(tmp_path, "20240101-000000001", ("U", 4, "four"))
    table = read_lake(tmp_path, PARQUET, keys=KEY, segment_names=names)["s.t"]
    assert table.loads == [
        "s/t/low/LOAD00000001.parquet",
        "s/t/low/LOAD00000002.parquet",
        "s/t/high/LOAD00000001.parquet",
    ]
    assert [r.row["id"] for r in table.load_rows] == [1, 2, 3, 4]
    assert table.rows[-1] == {"id": 4, "v": "four"}
    with pytest.raises(
        LakeError, match=r"s/t/high/LOAD00000001\.parquet: expected in the folder .of the table."
    ):
        read_lake(tmp_path, PARQUET, keys=KEY)  # without segment names: no folders
    for bad in (
        "other/LOAD00000001.parquet",
        "LOAD00000001.parquet",
        "high/SEGMENT2_LOAD00000002.parquet",
        "low/20240101-000000009.parquet",
    ):
        path = tmp_path / "s/t" / bad
        _parquet(tmp_path, f"s/t/{bad}", [{"id": 9, "v": "x"}])
        with pytest.raises(LakeError, match=re.escape(f"s/t/{bad}: expected")):
            read_lake(tmp_path, PARQUET, keys=KEY, segment_names=names)
        path.unlink()
    _load(tmp_path, 5, name="high/LOAD00000003.parquet")
    with pytest.raises(LakeError, match=r"LOAD counters do not run 1, 2, …: \['high/LOAD0000"):
        read_lake(tmp_path, PARQUET, keys=KEY, segment_names=names)
    _load(tmp_path, 5, name="high/LOAD00000002.parquet")
    with pytest.raises(LakeError, match=r"key \(5,\) written twice by the full load"):
        read_lake(tmp_path, PARQUET, keys=KEY, segment_names=names)
