"""The objects of a lake read without opendms: local files, or S3 objects through boto3.

Tests use it to see exactly what a lake consumer sees: every object (zero-byte folder
markers included), each file's bytes, and the rows of the CDC files of a table in
name order (``yyyymmdd-hhmmssfff``, which is commit order).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

CDC_NAME = re.compile(r"^\d{8}-\d{9}\.(parquet|csv|csv\.gz)$")
LOAD_NAME = re.compile(r"^(SEGMENT\d+_)?LOAD[0-9A-F]{8}\.")


class LakeObjects:
    """Objects under ``file:///dir`` or ``s3://bucket/prefix`` (``client``: boto3)."""

    def __init__(self, url: str, client: Any = None) -> None:
        parts = urlsplit(url)
        self.client = client
        if parts.scheme == "s3":
            self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
            self.root = Path()
        else:
            self.root = Path(parts.path)
            self.bucket, self.prefix = "", ""

    def sizes(self) -> dict[str, int]:
        """Every object by its key relative to the lake root (folders of a local lake
        are not objects; on S3 a key ending in ``/`` is a folder marker)."""
        if not self.bucket:
            files = (p for p in self.root.rglob("*") if p.is_file())
            return {p.relative_to(self.root).as_posix(): p.stat().st_size for p in files}
        out: dict[str, int] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            for obj in page.get("Contents", []):
                out[obj["Key"][len(self.prefix) :].lstrip("/")] = int(obj["Size"])
        return out

    def bucket_sizes(self) -> dict[str, int]:
        """Every object of the bucket (S3) by its full key; the lake's parent folder's
        files for a local lake."""
        if not self.bucket:
            parent = self.root.parent
            files = (p for p in parent.rglob("*") if p.is_file())
            return {p.relative_to(parent).as_posix(): p.stat().st_size for p in files}
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = int(obj["Size"])
        return out

    def read(self, key: str) -> bytes:
        if not self.bucket:
            return (self.root / key).read_bytes()
        full = f"{self.prefix}/{key}" if self.prefix else key
        body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return bytes(body.read())

    def parquet(self, key: str) -> pa.Table:
        return pq.read_table(io.BytesIO(self.read(key)))

    def table_keys(self, schema: str, table: str) -> tuple[list[str], list[str]]:
        """(LOAD files, CDC files in name order) of one table, date folders included."""
        folder = f"{schema}/{table}/"
        named = [(k.rsplit("/", 1)[-1], k) for k in self.sizes() if k.startswith(folder)]
        loads = sorted(k for name, k in named if LOAD_NAME.match(name))
        cdc = sorted((name, k) for name, k in named if CDC_NAME.match(name))
        return loads, [k for _, k in cdc]

    def cdc_rows(self, schema: str, table: str, *drop: str) -> list[tuple[Any, ...]]:
        """The rows of a table's Parquet CDC files in file order, without ``drop``."""
        rows: list[tuple[Any, ...]] = []
        for key in self.table_keys(schema, table)[1]:
            data = self.parquet(key).drop_columns(list(drop))
            rows += [tuple(r.values()) for r in data.to_pylist()]
        return rows
