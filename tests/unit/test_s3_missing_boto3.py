"""Without boto3 (the ``s3`` extra), an S3 write that needs it names the extra."""

from __future__ import annotations

import sys

import pyarrow.fs as pafs
import pytest

from opendms.endpoints.lake.s3delete import S3Deleter
from opendms.errors import MissingExtraError


def test_an_upload_with_headers_pyarrow_cannot_send_names_the_s3_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("boto3", "botocore", "botocore.config", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    deleter = S3Deleter(pafs.LocalFileSystem(), {})
    with pytest.raises(MissingExtraError, match=r"'boto3'.*opendms\[s3\]"):
        deleter.upload("bucket/key", b"x", {"ServerSideEncryption": "AES256"})
