"""The lake's files as DMS writes them, local and on SeaweedFS S3: ``MaxFileSize`` is a
hard cap for LOAD and CDC files; a reload or re-run leaves no CDC file of the previous
run; nothing but data files under the data prefix (no folder markers; the checkpoint
in ``<prefix>/_opendms/``, which crawlers skip). Rows are read by the independent reader
(:mod:`tests.oracles.lake`) and compared with the source's; file names are derived from
the README's rules (hex LOAD counter, consecutive CDC stamps).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opendms.config import task_from_dict
from opendms.endpoints import check_endpoint
from opendms.service.run import RunOptions, run_task
from opendms.state import StateStore
from tests.integration.lakeobjects import LakeObjects
from tests.oracles.lake import LakeError, LakeTable, read_lake
from tests.oracles.lakefiles import CDC_NAME, load_name, stamp_of, stamp_time
from tests.support.servers import SeaweedS3Server
from tests.support.sql import execute

ROWS = 12000
BIG = [
    "CREATE TABLE big (id INTEGER PRIMARY KEY, code TEXT, qty INT, note TEXT, amount REAL)",
    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < "
    f"{ROWS}) INSERT INTO big SELECT n, hex(randomblob(12)), n * 7919 % 100003, "
    "substr('lorem ipsum dolor sit amet, consectetur adipiscing elit', 1 + n % 40), "
    "n / 7.0 FROM g",
]


def _sqlite(tmp_path: Path, *sql: str) -> str:
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        for statement in sql:
            conn.execute(statement)
    conn.close()
    return f"sqlite:///{db}"


def _spec(
    source: str,
    target: str,
    settings: str,
    mtype: str = "full-load",
    prep: str = "DROP_AND_CREATE",
) -> Any:
    return task_from_dict(
        {
            "name": "files",
            "source": source,
            "target": {"url": target, "settings": settings},
            "migration_type": mtype,
            "task_settings": {"FullLoadSettings": {"TargetTablePrepMode": prep}},
        },
        where="test",
    )


def _objects(url: str, s3: SeaweedS3Server | None) -> LakeObjects:
    return LakeObjects(url, s3.client() if s3 is not None else None)


BIG_COLUMNS = ["id", "code", "qty", "note", "amount"]
PARSE = {"id": int, "qty": int, "amount": float}


def _table(url: str, settings: str, name: str = "big", columns: Any = BIG_COLUMNS) -> LakeTable:
    """A table of the lake read by the independent reader (strictly folded by Op)."""
    lake = read_lake(url, settings, keys=["id"], columns=columns, parse=PARSE)
    return lake[f"main.{name}"]


def _source_rows(source: str, table: str = "big") -> list[tuple[Any, ...]]:
    db = source.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
    conn.close()
    return rows


def _values(t: LakeTable) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in t.rows]


def _load_names(t: LakeTable) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in t.loads]


def _rows_per_file(t: LakeTable, paths: list[str]) -> list[int]:
    rows = t.load_rows + t.changes
    return [sum(1 for r in rows if r.file == p) for p in paths]


# -- MaxFileSize ------------------------------------------------------------------------

CAP_KB = 96
ONE_MS = timedelta(milliseconds=1)
FORMATS = [
    "DataFormat=parquet",
    "DataFormat=parquet;RowGroupLength=1000;ParquetCompression=none",
    "DataFormat=csv;AddColumnName=true",
    "DataFormat=csv;CompressionType=GZIP;RowGroupLength=2000",
]


def _load_under_cap(tmp_path: Path, lake_url: str, s3: SeaweedS3Server | None, fmt: str) -> None:
    settings = f"{fmt};MaxFileSize={CAP_KB}"
    source = _sqlite(tmp_path, *BIG)
    run_task(_spec(source, lake_url, settings), StateStore(tmp_path / "state.db"))
    sizes = _objects(lake_url, s3).sizes()
    big = _table(lake_url, settings)
    ext = big.loads[0].rsplit(".", 2 if big.loads[0].endswith(".gz") else 1)[1:]
    assert len(big.loads) >= 3
    assert _load_names(big) == [load_name(n, ".".join(ext)) for n in range(1, len(big.loads) + 1)]
    assert max(sizes[k] for k in big.loads) <= CAP_KB * 1024, {k: sizes[k] for k in big.loads}
    assert _values(big) == _source_rows(source)


@pytest.mark.parametrize("fmt", FORMATS)
def test_max_file_size_is_a_hard_cap_for_load_files(tmp_path: Path, fmt: str) -> None:
    _load_under_cap(tmp_path, f"file://{tmp_path}/lake", None, fmt)


@pytest.mark.parametrize("fmt", [FORMATS[0], FORMATS[2]])
def test_max_file_size_is_a_hard_cap_on_s3(
    tmp_path: Path, fmt: str, s3_url: str, s3_server: SeaweedS3Server
) -> None:
    _load_under_cap(tmp_path, s3_url, s3_server, fmt)


def test_a_row_larger_than_the_cap_gets_a_file_of_its_own(tmp_path: Path) -> None:
    """Only a single row larger than MaxFileSize makes a larger file."""
    source = _sqlite(
        tmp_path,
        "CREATE TABLE big (id INTEGER PRIMARY KEY, note TEXT)",
        "INSERT INTO big VALUES (1, 'small'), (2, hex(randomblob(4000))), (3, 'small')",
    )
    lake_url = f"file://{tmp_path}/lake"
    settings = "DataFormat=csv;MaxFileSize=1"
    run_task(_spec(source, lake_url, settings), StateStore(tmp_path / "state.db"))
    sizes = _objects(lake_url, None).sizes()
    big = _table(lake_url, settings, columns=["id", "note"])
    assert _load_names(big) == [load_name(n, "csv") for n in (1, 2, 3)]
    assert [r.row["id"] for r in big.load_rows] == [1, 2, 3]  # one row per file
    assert [sizes[k] > 1024 for k in big.loads] == [False, True, False]
    assert _values(big) == _source_rows(source)


@pytest.mark.parametrize("fmt", ["DataFormat=parquet", "DataFormat=csv;CompressionType=GZIP"])
def test_max_file_size_caps_cdc_files(tmp_path: Path, fmt: str) -> None:
    """A CDC batch larger than MaxFileSize is several files with consecutive stamps;
    read in name order they hold the changes in commit order."""
    source = _sqlite(tmp_path, *BIG[:1])
    lake_url = f"file://{tmp_path}/lake"
    settings = f"{fmt};MaxFileSize={CAP_KB}"
    store = StateStore(tmp_path / "state.db")
    spec = _spec(source, lake_url, settings, "full-load-and-cdc")
    run_task(spec, store)
    execute(source, [BIG[1].replace("INSERT INTO big", "INSERT INTO big")])
    run_task(spec, store)
    sizes = _objects(lake_url, None).sizes()
    big = _table(lake_url, settings)
    assert len(big.cdc) >= 3
    assert max(sizes[k] for k in big.cdc) <= CAP_KB * 1024
    stamps = [n.split(".", 1)[0] for n in big.cdc_names()]
    first = stamp_time(stamps[0])
    assert stamps == [stamp_of(first + i * ONE_MS) for i in range(len(stamps))]  # consecutive
    assert big.op_rows("id") == [("I", n) for n in range(1, ROWS + 1)]  # commit order
    assert _values(big) == _source_rows(source)


# -- reload and re-run ------------------------------------------------------------------

SMALL = [
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)",
    "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
]
PARTITIONED = "DataFormat=parquet;DatePartitionEnabled=true;DatePartitionSequence=YYYYMMDDHH"


def _reload_leaves_no_stale_cdc(
    tmp_path: Path, lake_url: str, s3: SeaweedS3Server | None, prep: str
) -> None:
    source = _sqlite(tmp_path, *SMALL)
    store = StateStore(tmp_path / "state.db")
    spec = _spec(source, lake_url, PARTITIONED, "full-load-and-cdc", prep)
    run_task(spec, store)
    execute(source, ["DELETE FROM t WHERE id = 2", "INSERT INTO t VALUES (4, 'd')"])
    run_task(spec, store)
    t = _table(lake_url, PARTITIONED, "t")
    assert t.op_rows("id", "v") == [("D", 2, "b"), ("I", 4, "d")]  # in a date folder
    assert len(t.cdc) == 1 and t.cdc_names()[0].count("/") == 4
    execute(source, ["DELETE FROM t WHERE id = 4"])
    run_task(spec, store, RunOptions(fresh=True))  # task reload: a new full load
    t = _table(lake_url, PARTITIONED, "t")
    assert t.cdc == []  # the delete of 2 and the insert of 4 are gone with the old load
    assert _load_names(t) == ["LOAD00000001.parquet"]
    assert _values(t) == [(1, "a"), (3, "c")] == _source_rows(source, "t")
    if s3 is None:  # no empty date folders left behind
        assert [p.name for p in (tmp_path / "lake/main/t").iterdir()] == ["LOAD00000001.parquet"]


@pytest.mark.parametrize("prep", ["DROP_AND_CREATE", "TRUNCATE_BEFORE_LOAD"])
def test_reload_removes_the_previous_cdc_files(tmp_path: Path, prep: str) -> None:
    _reload_leaves_no_stale_cdc(tmp_path, f"file://{tmp_path}/lake", None, prep)


def test_reload_removes_the_previous_cdc_files_on_s3(
    tmp_path: Path, s3_url: str, s3_server: SeaweedS3Server
) -> None:
    _reload_leaves_no_stale_cdc(tmp_path, s3_url, s3_server, "DROP_AND_CREATE")


def test_only_opendms_files_go_and_do_nothing_keeps_them(tmp_path: Path) -> None:
    """DROP_AND_CREATE removes only files opendms names; DO_NOTHING leaves them all."""
    lake_url = f"file://{tmp_path}/lake"
    folder = tmp_path / "lake/main/t"
    folder.mkdir(parents=True)
    (folder / "20200101-000000000.parquet").write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    source = _sqlite(tmp_path, *SMALL)
    run_task(_spec(source, lake_url, "DataFormat=parquet"), StateStore(tmp_path / "state.db"))
    assert sorted(p.name for p in folder.iterdir()) == ["LOAD00000001.parquet", "notes.txt"]
    keep = _spec(source, lake_url, "DataFormat=parquet", prep="DO_NOTHING")
    (folder / "20200101-000000000.parquet").write_bytes(b"old")
    run_task(keep, StateStore(tmp_path / "state.db"))
    assert sorted(p.name for p in folder.iterdir()) == [
        "20200101-000000000.parquet",
        "LOAD00000001.parquet",
        "notes.txt",
    ]


# -- nothing but data under the data prefix ---------------------------------------------


def _busy_lake(tmp_path: Path, lake_url: str) -> None:
    """Test connection, full load, changes, a reload and more changes, into one lake."""
    check_endpoint(lake_url)
    source = _sqlite(tmp_path, *SMALL)
    store = StateStore(tmp_path / "state.db")
    spec = _spec(source, lake_url, PARTITIONED, "full-load-and-cdc")
    run_task(spec, store)
    execute(source, ["DELETE FROM t WHERE id = 2", "INSERT INTO t VALUES (4, 'd')"])
    run_task(spec, store)
    run_task(spec, store, RunOptions(fresh=True))
    execute(source, ["UPDATE t SET v = 'z' WHERE id = 1"])
    run_task(spec, store)


def _only_data(keys: list[str]) -> None:
    """The checkpoint in ``_opendms/``; the table's LOAD file and its CDC file (in a date
    folder) of the run after the reload; nothing else."""
    hidden = sorted(k for k in keys if k.startswith("_opendms/"))
    assert hidden == ["_opendms/checkpoints/files.json"]
    data = sorted(set(keys) - set(hidden))
    assert len(data) == 2 and data[-1] == "main/t/LOAD00000001.parquet", data
    assert data[0].startswith("main/t/") and CDC_NAME.match(data[0].rsplit("/", 1)[-1])


def test_no_folder_markers_and_the_checkpoint_hidden_on_s3(
    tmp_path: Path, s3_url: str, s3_server: SeaweedS3Server
) -> None:
    _busy_lake(tmp_path, s3_url)
    lake = _objects(s3_url, s3_server)
    everything = lake.bucket_sizes()
    assert [k for k, size in everything.items() if k.endswith("/") or not size] == []
    assert all(k.startswith(f"{lake.prefix}/") for k in everything)
    _only_data(list(lake.sizes()))


def test_the_checkpoint_is_hidden_in_a_local_lake(tmp_path: Path) -> None:
    _busy_lake(tmp_path, f"file://{tmp_path}/lake")
    root = tmp_path / "lake"
    assert sorted(p.name for p in root.iterdir()) == ["_opendms", "main"]
    _only_data(list(_objects(f"file://{root}", None).sizes()))


def _move_object(lake: LakeObjects, old: str, new: str) -> None:
    """What an older version left: the checkpoint beside the schema folders."""
    if not lake.bucket:
        (lake.root / new).parent.mkdir(parents=True, exist_ok=True)
        (lake.root / old).rename(lake.root / new)
        (lake.root / old).parent.rmdir()
        return
    client, prefix = lake.client, f"{lake.prefix}/"
    client.put_object(Bucket=lake.bucket, Key=prefix + new, Body=lake.read(old))
    client.delete_object(Bucket=lake.bucket, Key=prefix + old)


def _resumes_from_the_old_checkpoint(tmp_path: Path, lake_url: str, lake: LakeObjects) -> None:
    source = _sqlite(tmp_path, *SMALL)
    store = StateStore(tmp_path / "state.db")
    spec = _spec(source, lake_url, "DataFormat=parquet", "full-load-and-cdc")
    run_task(spec, store)
    execute(source, ["INSERT INTO t VALUES (4, 'd')"])
    run_task(spec, store)
    new, old = "_opendms/checkpoints/files.json", "opendms_checkpoints/files.json"
    _move_object(lake, new, old)
    execute(source, ["DELETE FROM t WHERE id = 1"])
    run_task(spec, store)  # resumes: no new full load, the next change only
    t = _table(lake_url, "DataFormat=parquet", "t")
    assert [r.row["id"] for r in t.load_rows] == [1, 2, 3]
    assert t.op_rows("id") == [("I", 4), ("D", 1)]
    assert _values(t) == [(2, "b"), (3, "c"), (4, "d")]
    assert sorted(k for k in lake.sizes() if "checkpoints" in k) == [new]


def test_an_old_place_checkpoint_is_moved_and_the_task_resumes(tmp_path: Path) -> None:
    lake_url = f"file://{tmp_path}/lake"
    _resumes_from_the_old_checkpoint(tmp_path, lake_url, _objects(lake_url, None))
    assert sorted(p.name for p in (tmp_path / "lake").iterdir()) == ["_opendms", "main"]


def test_an_old_place_checkpoint_is_moved_on_s3(
    tmp_path: Path, s3_url: str, s3_server: SeaweedS3Server
) -> None:
    _resumes_from_the_old_checkpoint(tmp_path, s3_url, _objects(s3_url, s3_server))


def test_a_pending_batch_survives_the_move(tmp_path: Path) -> None:
    """Exactly once across the move: the pending batch of a crash comes along."""
    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.lake.apply import LakeApplier
    from opendms.endpoints.lake.engine import ENGINE as LAKE

    old = tmp_path / "lake/opendms_checkpoints/t.json"
    old.parent.mkdir(parents=True)
    pending = {"end": "0/30", "stamp": "20240101-000000000", "files": ["x"]}
    old.write_text(json.dumps({"position": "0/10", "last_stamp": None, "pending": pending}))
    applier = LakeApplier(
        LAKE.lake_target(EndpointURL.parse(f"file://{tmp_path}/lake"), {}), "t", []
    )
    assert (applier.read_checkpoint(), applier.must_flush_at()) == ("0/10", "0/30")
    assert not old.parent.exists()
    moved = json.loads((tmp_path / "lake/_opendms/checkpoints/t.json").read_text())
    assert moved["pending"] == pending


def test_markers_an_earlier_version_left_are_removed(
    tmp_path: Path, s3_url: str, s3_server: SeaweedS3Server
) -> None:
    lake = _objects(s3_url, s3_server)
    for marker in ("", "main/", "main/t/"):
        s3_server.client().put_object(Bucket=lake.bucket, Key=f"{lake.prefix}/{marker}", Body=b"")
    source = _sqlite(tmp_path, *SMALL)
    run_task(_spec(source, s3_url, "DataFormat=parquet"), StateStore(tmp_path / "state.db"))
    assert sorted(lake.bucket_sizes()) == [f"{lake.prefix}/main/t/LOAD00000001.parquet"]


def _rows_over_the_cap(tmp_path: Path, rows: int) -> tuple[str, LakeTable]:
    """``rows`` rows of 1400 characters loaded with MaxFileSize=1 (KB) into a CSV lake."""
    source = _sqlite(
        tmp_path,
        "CREATE TABLE big (id INTEGER PRIMARY KEY, note TEXT)",
        "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < "
        f"{rows}) INSERT INTO big SELECT n, hex(randomblob(700)) FROM g",
    )
    lake_url = f"file://{tmp_path}/lake"
    run_task(_spec(source, lake_url, "DataFormat=csv;MaxFileSize=1"), StateStore(tmp_path / "s.db"))
    return source, _table(lake_url, "DataFormat=csv", columns=["id", "note"])


def test_many_rows_each_larger_than_the_cap(tmp_path: Path) -> None:
    """Each row larger than MaxFileSize: a file per row, however many rows."""
    source, big = _rows_over_the_cap(tmp_path, 1500)
    assert _load_names(big) == [load_name(n, "csv") for n in range(1, 1501)]
    assert _values(big) == _source_rows(source)


def test_load_counter_is_hexadecimal(tmp_path: Path) -> None:
    """More than 9 LOAD files: the counter goes on in hexadecimal, LOAD00000009 then
    LOAD0000000A … LOAD0000000F, LOAD00000010 (DMS guide); 20 rows each larger than
    MaxFileSize make 20 files, one row each, in the order they were read."""
    source, big = _rows_over_the_cap(tmp_path, 20)
    names = _load_names(big)
    assert names == [load_name(n, "csv") for n in range(1, 21)]
    assert names[8:17] == [f"LOAD0000000{c}.csv" for c in "9ABCDEF"] + [
        "LOAD00000010.csv",
        "LOAD00000011.csv",
    ]
    assert [r.row["id"] for r in big.load_rows] == list(range(1, 21))
    assert _values(big) == _source_rows(source)


@pytest.mark.parametrize("name", ["LOAD1.parquet", "x.parquet", "load00000002.parquet"])
def test_a_misnamed_file_fails_the_lake_reader(tmp_path: Path, name: str) -> None:
    """A file in a table folder whose name is neither a LOAD nor a CDC file name (here a
    copy of a real LOAD file) fails the independent reader, naming the file: a lake
    consumer's glob would read it, and a reader that skipped it would hide it."""
    source = _sqlite(tmp_path, *SMALL)
    lake_url = f"file://{tmp_path}/lake"
    store = StateStore(tmp_path / "state.db")
    spec = _spec(source, lake_url, "DataFormat=parquet", "full-load-and-cdc")
    run_task(spec, store)
    execute(source, ["UPDATE t SET v = 'z' WHERE id = 1"])
    run_task(spec, store)
    assert _values(_table(lake_url, "DataFormat=parquet", "t")) == [(1, "z"), (2, "b"), (3, "c")]
    folder = tmp_path / "lake/main/t"
    shutil.copy(folder / "LOAD00000001.parquet", folder / name)
    with pytest.raises(LakeError, match=f"main/t/{name}: the name is neither a LOAD"):
        _table(lake_url, "DataFormat=parquet", "t")
