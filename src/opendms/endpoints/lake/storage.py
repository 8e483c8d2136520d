"""Where lake files go: a local directory or an S3-compatible bucket (pyarrow.fs).

Nothing but data goes under the lake's root: opendms's own objects (the CDC
checkpoints) live in :data:`HIDDEN_FOLDER`, which query engines following Hive's
convention skip (Athena/Trino, Hive and Spark ignore paths whose names start with
``_`` or ``.``), and no empty folder marker object is left on S3 (objects are
written whole by one PUT or multipart upload, never a folder; deletes go through
:class:`~.s3delete.S3Deleter`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pyarrow.fs as pafs

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.lake.s3delete import S3Deleter
from opendms.errors import (
    AuthenticationError,
    ConfigError,
    ConnectError,
    DatabaseMissingError,
    EndpointError,
)

HIDDEN_FOLDER = "_opendms"
log = logging.getLogger("opendms.endpoints")


@dataclass(frozen=True)
class Storage:
    """A filesystem plus the root path (``bucket/prefix`` on S3) under it."""

    fs: pafs.FileSystem
    root: str
    display: str
    atomic_put: bool  # S3 objects appear whole; local files need write+rename
    deleter: S3Deleter | None = field(default=None, repr=False, compare=False)
    # S3 request settings pyarrow cannot send (server-side encryption): objects are then
    # PUT by boto3 (see put_object and LakeWriter)
    put_args: dict[str, str] = field(default_factory=dict, compare=False)
    acl: str = ""  # CannedAclForObjects as S3 spells it, for objects PUT by boto3

    def path(self, *parts: str) -> str:
        tail = [p.strip("/") for p in parts if p.strip("/")]
        return "/".join([self.root.rstrip("/") or "/", *tail]).replace("//", "/")


def open_storage(url: EndpointURL, settings: dict[str, Any]) -> Storage:
    """The lake's files: the URL's folder or ``bucket/prefix``, and under it the DMS
    ``BucketFolder`` setting's folder when one is given."""
    q = {k.lower(): str(v) for k, v in {**url.query, **settings}.items()}
    folder = q.get("bucketfolder", "").strip("/")
    _check_bucket_name(url, q.get("bucketname", ""))
    if url.scheme == "file":
        root = os.path.abspath(
            os.path.join(url.host, url.path.lstrip("/")) if url.host else url.path
        )
        root = os.path.join(root, folder) if folder else root
        _warn_s3_only(q)
        return Storage(pafs.LocalFileSystem(), root, f"file://{root}", atomic_put=False)
    return _s3_storage(url, q, folder)


_S3_ONLY = ("encryptionmode", "serversideencryptionkmskeyid", "cannedaclforobjects")
_warned: set[str] = set()


def _warn_s3_only(q: dict[str, str]) -> None:
    for name in _S3_ONLY:
        if name in q and name not in _warned:
            _warned.add(name)
            log.warning("lake endpoint setting %s applies to S3 lakes only: no effect here", name)


def _check_bucket_name(url: EndpointURL, bucket: str) -> None:
    """DMS's ``BucketName`` names the bucket the URL names already; another is an error."""
    if not bucket:
        return
    if url.scheme == "file":
        raise ConfigError(
            f"endpoint setting BucketName={bucket!r}: {url} is a local folder, not a bucket"
        )
    if bucket != url.host:
        raise ConfigError(
            f"endpoint setting BucketName={bucket!r} contradicts the URL's bucket {url.host!r}"
        )


def _s3_storage(url: EndpointURL, q: dict[str, str], folder: str) -> Storage:
    endpoint = (
        q.get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL", "")
    )
    kwargs: dict[str, Any] = {
        "region": q.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "connect_timeout": 5,
        "request_timeout": 30,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    if endpoint:
        scheme, _, hostport = endpoint.partition("://")
        kwargs.update(endpoint_override=hostport.rstrip("/"), scheme=scheme or "https")
        kwargs["force_virtual_addressing"] = False
    key = q.get("aws_access_key_id") or os.environ.get("AWS_ACCESS_KEY_ID")
    secret = q.get("aws_secret_access_key") or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        kwargs.update(access_key=key, secret_key=secret)
    if not url.host:
        raise EndpointError(str(url), "no bucket in the URL (s3://bucket/prefix)")
    acl = q.get("cannedaclforobjects", "none").lower().replace("_", "-")
    if acl != "none":  # DMS's CannedAclForObjects, sent as x-amz-acl with each object
        kwargs["default_metadata"] = {"ACL": acl}
    fs = pafs.S3FileSystem(**kwargs)
    root = "/".join(p for p in (url.host, url.path.strip("/"), folder) if p)
    client = {"endpoint_url": endpoint or None, "region_name": kwargs["region"]}
    if key and secret:
        client.update(aws_access_key_id=key, aws_secret_access_key=secret)
    deleter = S3Deleter(fs, client)
    put_args = _encryption(q)
    if put_args and acl != "none":
        put_args["ACL"] = acl
    acl_name = "" if acl == "none" else acl
    return Storage(fs, root, f"s3://{root}", True, deleter=deleter, put_args=put_args, acl=acl_name)


def _encryption(q: dict[str, str]) -> dict[str, str]:
    """DMS's EncryptionMode (SSE_S3 | SSE_KMS) and ServerSideEncryptionKmsKeyId as S3
    PUT arguments; a KMS key alone means SSE_KMS. Nothing when neither is given (the
    bucket's default encryption applies)."""
    mode = q.get("encryptionmode", "").upper().replace("-", "_")
    kms_key = q.get("serversideencryptionkmskeyid", "")
    if kms_key or mode == "SSE_KMS":
        return {"ServerSideEncryption": "aws:kms", **({"SSEKMSKeyId": kms_key} if kms_key else {})}
    if mode == "SSE_S3":
        return {"ServerSideEncryption": "AES256"}
    return {}


def upload_args(storage: Storage, tags: dict[str, str] | None = None) -> dict[str, str]:
    """The S3 PUT arguments pyarrow cannot send for one object (encryption, ACL, the
    object's tags); empty when pyarrow can write it (and always for a local lake)."""
    if storage.deleter is None:
        return {}
    args = dict(storage.put_args)
    if tags:
        args["Tagging"] = urlencode(tags)
        acl = storage.acl
        if acl and "ACL" not in args:
            args["ACL"] = acl
    return args


def put_object(
    storage: Storage, path: str, data: bytes, tags: dict[str, str] | None = None
) -> None:
    """Write a whole object: one PUT on S3 (it appears whole); locally a temporary
    file renamed into place (its folder created first)."""
    fs = storage.fs
    args = upload_args(storage, tags)
    if args and storage.deleter is not None:
        storage.deleter.upload(path, data, args)
        return
    if storage.atomic_put:
        with fs.open_output_stream(path) as out:
            out.write(data)
        return
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path + ".tmp") as out:
        out.write(data)
    fs.move(path + ".tmp", path)


def delete_files(storage: Storage, paths: Iterable[str]) -> None:
    """Delete files; on S3 without leaving folder markers (see :mod:`.s3delete`)."""
    names = list(paths)
    if storage.deleter is not None:
        storage.deleter(names)
        return
    for path in names:
        storage.fs.delete_file(path)


def drop_markers(storage: Storage, folders: Iterable[str]) -> None:
    """Delete the empty-folder marker objects (``folder/``) that an earlier version
    (through pyarrow) may have left for these folders; S3 only."""
    if storage.deleter is not None:
        storage.deleter.markers([f"{f.rstrip('/')}/" for f in folders])


def check_storage(storage: Storage, url: EndpointURL) -> str:
    """Test connection: the bucket / directory exists and we may write to it."""
    bucket = storage.root.split("/", 1)[0] if storage.atomic_put else storage.root
    try:
        info = storage.fs.get_file_info(bucket)
        if storage.atomic_put and info.type == pafs.FileType.NotFound:
            raise DatabaseMissingError(str(url), f"bucket {bucket!r} does not exist")
        if not storage.atomic_put and info.type == pafs.FileType.NotFound:
            parent = os.path.dirname(bucket)
            if not os.path.isdir(parent):
                raise DatabaseMissingError(str(url), f"directory {parent!r} does not exist")
        probe = storage.path(".opendms-write-test")
        if not storage.atomic_put:
            storage.fs.create_dir(storage.root, recursive=True)
        with storage.fs.open_output_stream(probe) as out:
            out.write(b"ok")
        delete_files(storage, [probe])
        if "/" in storage.root.strip("/"):  # a prefix: its marker, if one was left
            drop_markers(storage, [storage.root])
    except OSError as exc:
        raise translate_os_error(exc, url) from exc
    return f"lake at {storage.display} is writable"


def translate_os_error(exc: OSError, url: EndpointURL) -> EndpointError:
    text = str(exc)
    lowered = text.lower().replace("_", " ")
    if "access denied" in lowered or "invalidaccesskeyid" in lowered or "signature" in lowered:
        return AuthenticationError(str(url), "S3 refused the credentials (access denied)")
    if "curl" in lowered or "connect" in lowered or "resolve" in lowered:
        return ConnectError(str(url), f"cannot reach the S3 endpoint: {text.splitlines()[0]}")
    if "nosuchbucket" in lowered or "not found" in lowered:
        return DatabaseMissingError(str(url), "the bucket does not exist")
    if "permission denied" in lowered:
        return EndpointError(str(url), f"permission denied: {text.splitlines()[0]}")
    return EndpointError(str(url), text.splitlines()[0] if text else type(exc).__name__)
