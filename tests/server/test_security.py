"""The server's security: SigV4 verification of the DMS API with configured access keys,
the request body limit in both API shapes, and ``opendms serve``'s token and TLS rules."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from opendms.cli.main import cli
from opendms.server.app import create_app
from opendms.server.sigv4 import load_access_keys
from tests.server.conftest import running

pytestmark = pytest.mark.timeout(60)

KEYS = {"AKIDOPENDMS": "the-right-secret"}


@pytest.fixture
def signed(tmp_path: Path) -> Iterator[str]:
    """A server that verifies SigV4 signatures with ``KEYS``."""
    with running(create_app(tmp_path / "state", access_keys=KEYS)) as url:
        yield url


def _client(url: str, key_id: str, secret: str) -> Any:
    return boto3.session.Session().client(
        "dms",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def _code(call: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call()
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_sigv4_with_configured_keys(signed: str, tmp_path: Path) -> None:
    good = _client(signed, "AKIDOPENDMS", "the-right-secret")
    made = good.create_endpoint(
        EndpointIdentifier="lake",
        EndpointType="target",
        EngineName="file",
        DatabaseName=str(tmp_path / "lake"),
    )
    assert made["Endpoint"]["EndpointIdentifier"] == "lake"
    assert [e["EndpointIdentifier"] for e in good.describe_endpoints()["Endpoints"]] == ["lake"]
    wrong = _client(signed, "AKIDOPENDMS", "a-wrong-secret")
    assert _code(wrong.describe_endpoints) == ("InvalidSignatureException", 400)
    unknown = _client(signed, "AKIDNOBODY", "the-right-secret")
    assert _code(unknown.describe_endpoints) == ("UnrecognizedClientException", 400)
    headers = {"X-Amz-Target": "AmazonDMSv20160101.DescribeEndpoints"}
    unsigned = httpx.post(signed, headers=headers, content=b"{}")
    assert (unsigned.status_code, unsigned.json()["__type"]) == (
        400,
        "MissingAuthenticationTokenException",
    )
    forged = httpx.post(
        signed,
        headers={
            **headers,
            "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDOPENDMS/20240101/us-east-1/dms/"
            "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            "X-Amz-Date": "20240101T000000Z",
        },
        content=b"{}",
    )
    assert forged.status_code == 400
    assert forged.json()["__type"] == "InvalidSignatureException"  # too old, besides


def test_without_keys_any_signature_is_accepted(dms: Any) -> None:
    assert dms.describe_endpoints()["Endpoints"] == []


def test_access_keys_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "keys"
    file.write_text("# comment\nAKID1:secret1\n\nAKID2 : secret:2\n")
    monkeypatch.setenv("OPENDMS_ACCESS_KEYS", "AKID3:s3,AKID4:s4")
    assert load_access_keys(file) == {
        "AKID1": "secret1",
        "AKID2": "secret:2",
        "AKID3": "s3",
        "AKID4": "s4",
    }
    file.write_text("no colon here\n")
    result = CliRunner().invoke(
        cli, ["serve", "--state", str(tmp_path / "s"), "--access-keys", str(file)]
    )
    assert result.exit_code == 2 and "line 1 is not ACCESS_KEY_ID:SECRET" in result.output


def test_oversized_bodies_in_both_api_shapes(server: str, token: str) -> None:
    big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    dms = httpx.post(
        server, headers={"X-Amz-Target": "AmazonDMSv20160101.DescribeEndpoints"}, content=big
    )
    assert dms.status_code == 413 and dms.json()["__type"] == "RequestEntityTooLargeException"
    auth = {"Authorization": f"Bearer {token}"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        for _ in range(20):
            yield b" " * 65536

    rest = httpx.post(f"{server}/api/v1/endpoints", headers=auth, content=chunks())
    assert rest.status_code == 413
    assert rest.json()["error"]["code"] == "body_too_large"
    assert httpx.get(f"{server}/api/v1/tasks", headers=auth).json() == []
    headers = {"X-Amz-Target": "AmazonDMSv20160101.DescribeEndpoints"}
    assert httpx.post(server, headers=headers, content=b"{}").json() == {"Endpoints": []}


def test_non_loopback_needs_tls_or_insecure(tmp_path: Path) -> None:
    state = str(tmp_path / "s")
    refused = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--state", state])
    assert refused.exit_code == 2
    assert "--ssl-certfile" in refused.output and "--insecure" in refused.output
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    half = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0", "--state", state, "--ssl-certfile", str(cert)]
    )
    assert half.exit_code == 2 and "go together" in half.output


def test_token_is_shown_once_then_on_request(tmp_path: Path) -> None:
    state = tmp_path / "s"
    first = CliRunner().invoke(cli, ["serve", "--state", str(state), "--show-token"])
    token = (state / "token").read_text().strip()
    assert first.exit_code == 0 and token in first.output and str(state / "token") in first.output
    assert (state / "token").stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(cli, ["serve", "--state", str(state), "--show-token"])
    assert token in again.output


def test_serve_prints_the_token_on_first_start_only(tmp_path: Path) -> None:
    state = tmp_path / "s"
    with socket.socket() as s:  # a taken port: uvicorn exits after the token is printed
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        first = CliRunner().invoke(cli, ["serve", "--state", str(state), "--port", port])
        token = (state / "token").read_text().strip()
        assert token in first.output
        second = CliRunner().invoke(cli, ["serve", "--state", str(state), "--port", port])
        assert token not in second.output
