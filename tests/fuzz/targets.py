"""Fuzz targets: the parsers that read what the world sends opendms.

Each target takes arbitrary bytes and runs one parser on them. The contract: any
input gives a value or one of opendms's typed errors (:class:`OpenDMSError`); any
other exception is a crash, and a hang or unbounded memory is one too (the runner
bounds both). Targets swallow ``OpenDMSError`` and nothing else.

Input layouts (so real data seeds the corpora, see ``corpus/<target>/``):

- ``pgoutput``: a stream of pgoutput messages, each prefixed by its length (4 bytes,
  big-endian), fed to one :class:`Decoder` in order;
- ``binlog``: binlog events back to back as the server sends them (each event's size
  is in its header), fed to one :class:`BinlogDecoder` in order;
- ``mappings``: table-mapping JSON text; what parses is then applied to a few tables;
- ``settings``: an endpoint URL line, then DMS extra connection attributes
  (``k=v;k=v``) resolved by every engine's settings and the lake's;
- ``taskfile``: a task file (YAML) as ``opendms`` reads it.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

from opendms.errors import OpenDMSError

Target = Callable[[bytes], None]


def _frames(data: bytes) -> Iterator[bytes]:
    """Length-prefixed messages (4 bytes, big-endian); a short tail is one message."""
    pos = 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        yield data[pos + 4 : pos + 4 + size]
        pos += 4 + size


def _events(data: bytes) -> Iterator[bytes]:
    """Binlog events back to back, cut where each header's event size says."""
    pos = 0
    while pos < len(data):
        size = max(int.from_bytes(data[pos + 9 : pos + 13], "little"), 19)
        yield data[pos : pos + size]
        pos += size


def pgoutput(data: bytes) -> None:
    from opendms.endpoints.postgres.pgoutput import Decoder

    decoder = Decoder()
    with suppress(OpenDMSError):
        for message in _frames(data):
            decoder.feed(message)


def binlog(data: bytes) -> None:
    from opendms.endpoints.mysql.binlog.decoder import BinlogDecoder

    decoder = BinlogDecoder(file="mysql-bin.000001")
    with suppress(OpenDMSError):
        for event in _events(data):
            decoder.feed(event)


def mappings(data: bytes) -> None:
    from opendms.mapping import parse_table_mappings
    from opendms.model import Column, Kind, T, Table, TableRef

    try:
        parsed = parse_table_mappings(data)
    except OpenDMSError:
        return
    table = Table(
        "public",
        "orders",
        (Column("id", T(Kind.INT64), False), Column("name", T(Kind.STRING))),
        ("id",),
    )
    long_name = "order_items_" + "a" * 40 + "_archive_2024"  # as long as names get
    refs = [TableRef("public", "orders"), TableRef("sales", long_name)]
    with suppress(OpenDMSError):
        parsed.select(refs)
        for ref in refs:
            parsed.filters_for(ref)
            parsed.parallel_load(ref)
        parsed.check_removals([table])
        parsed.plan(table)


SETTINGS_SCHEMES = ("postgresql", "mysql", "sqlite", "file", "s3")


def settings(data: bytes) -> None:
    from opendms.config import parse_extra_connection_attributes
    from opendms.endpoints import engines
    from opendms.endpoints.base import EndpointURL
    from opendms.endpoints.lake.settings import lake_settings

    text = data.decode("utf-8", "replace")
    line, _, attributes = text.partition("\n")
    try:
        values = parse_extra_connection_attributes(attributes)
    except OpenDMSError:
        return
    with suppress(OpenDMSError):
        lake_settings(values)
    for engine in dict.fromkeys(engines().values()):
        with suppress(OpenDMSError):
            if engine.settings is not None:
                engine.settings.resolve(EndpointURL.parse(line), values)


_TASK_DIR = Path(tempfile.mkdtemp(prefix="opendms-fuzz-"))


def taskfile(data: bytes) -> None:
    from opendms.config import load_task_file

    path = _TASK_DIR / "task.yaml"
    path.write_bytes(data)
    with suppress(OpenDMSError):
        load_task_file(path)


TARGETS: dict[str, Target] = {
    "pgoutput": pgoutput,
    "binlog": binlog,
    "mappings": mappings,
    "settings": settings,
    "taskfile": taskfile,
}
CORPUS = Path(__file__).parent / "corpus"


def seeds(name: str) -> list[bytes]:
    """The committed seed inputs of one target."""
    folder = CORPUS / name
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.is_dir() else []


def frame(messages: list[bytes]) -> bytes:
    """Messages in the ``pgoutput`` target's layout."""
    return b"".join(struct.pack("!I", len(m)) + m for m in messages)


# The modules each target exercises: imported under atheris' instrumentation so the
# fuzzer sees their coverage.
MODULES: dict[str, tuple[str, ...]] = {
    "pgoutput": ("opendms.endpoints.postgres.pgoutput",),
    "binlog": ("opendms.endpoints.mysql.binlog.decoder",),  # imports the whole package
    "mappings": ("opendms.mapping",),
    "settings": (
        "opendms.config",
        "opendms.endpoints.base",
        "opendms.endpoints.settings",
        "opendms.endpoints.lake.settings",
    ),
    "taskfile": ("opendms.config",),
}

__all__ = ["CORPUS", "MODULES", "TARGETS", "frame", "seeds"]
