"""The objects of a lake read without opendms: local files, or S3 objects through boto3.

Tests use it to see exactly what a lake consumer sees at the object level: every object
(zero-byte folder markers included) with its size, and each file's bytes. Rows are read
by :mod:`tests.oracles.lake`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


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
