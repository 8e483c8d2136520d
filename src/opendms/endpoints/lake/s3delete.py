"""Deleting lake objects on S3 without leaving folder markers behind.

pyarrow's S3 filesystem writes a zero-byte ``folder/`` marker object when a delete
leaves a folder empty, and for the parent of a deleted folder, so that the folder
keeps existing (as a local folder would). A lake holds nothing but data, so opendms
deletes S3 objects with boto3's DeleteObjects (the ``s3`` extra), which removes just
the objects named; without boto3 it falls back to pyarrow and says once that folder
markers may stay.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import pyarrow.fs as pafs

from opendms.errors import MissingExtraError

log = logging.getLogger("opendms.lake")
_BATCH = 1000  # keys per DeleteObjects request, the S3 maximum


class S3Deleter:
    """Deletes ``bucket/key`` paths; the client settings mirror the pyarrow filesystem's
    (endpoint, region, and the credentials when given; else boto3's own chain)."""

    def __init__(self, fs: pafs.FileSystem, client_args: dict[str, Any]) -> None:
        self.fs = fs
        self.client_args = client_args
        self.client: Any = None
        self.warned = False

    def __repr__(self) -> str:
        return "S3Deleter()"  # never the credentials

    def __call__(self, paths: list[str]) -> None:
        client = self._client()
        if client is None:
            for path in paths:
                self.fs.delete_file(path)
            return
        keys: dict[str, list[str]] = defaultdict(list)
        for path in paths:
            bucket, _, key = path.partition("/")
            keys[bucket].append(key)
        for bucket, names in keys.items():
            for start in range(0, len(names), _BATCH):
                self._delete(client, bucket, names[start : start + _BATCH])

    def upload(self, path: str, data: bytes | str, extra: dict[str, str]) -> None:
        """PUT ``bucket/key`` from bytes or a local file with request headers pyarrow
        cannot send (server-side encryption, object tags): boto3 is needed for them."""
        client = self._client()
        if client is None:
            raise MissingExtraError("boto3", "s3")
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, key = path.partition("/")
        try:
            if isinstance(data, bytes):
                client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
            else:
                client.upload_file(data, bucket, key, ExtraArgs=extra)
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"S3 PUT {path}: {exc}") from exc

    def markers(self, paths: list[str]) -> None:
        """Delete folder marker objects (``bucket/folder/``): boto3 only, as pyarrow
        cannot name one."""
        if self._client() is not None:
            self(paths)

    def _delete(self, client: Any, bucket: str, keys: list[str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        objects = [{"Key": key} for key in keys]
        try:
            answer = client.delete_objects(
                Bucket=bucket, Delete={"Objects": objects, "Quiet": True}
            )
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"S3 DeleteObjects in {bucket}: {exc}") from exc
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(
                f"S3 DeleteObjects in {bucket}: {first.get('Code')}: {first.get('Message')} "
                f"({first.get('Key')}; {len(errors)} object(s) not deleted)"
            )

    def _client(self) -> Any:
        if self.client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                if not self.warned:
                    self.warned = True
                    log.warning(
                        "boto3 is not installed (pip install 'opendms[s3]'): S3 deletes go "
                        "through pyarrow, which may leave empty folder marker objects"
                    )
                return None
            style = "path" if self.client_args.get("endpoint_url") else "auto"
            config = Config(s3={"addressing_style": style}, retries={"mode": "standard"})
            # a session of its own: boto3's default session keeps the first credentials
            # it resolved for the life of the process
            session = boto3.session.Session()
            self.client = session.client("s3", config=config, **self.client_args)
        return self.client
