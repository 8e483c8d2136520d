"""boto3 clients of a ``dynamodb://`` endpoint, and DynamoDB errors as opendms errors.

The URL names the service: ``region`` (else the environment's), ``endpoint_url`` (a
DynamoDB-compatible server; else AWS), ``profile``, or ``aws_access_key_id`` and
``aws_secret_access_key`` (else boto3's credential chain). Clients retry throttling in
botocore's ``standard`` mode; callers resend ``UnprocessedItems`` themselves."""

from __future__ import annotations

from typing import Any

from opendms.endpoints.base import EndpointURL
from opendms.errors import ConfigError, EndpointError

__all__ = ["DynamoClients", "describe_error", "error_code"]

_RETRIES = {"mode": "standard", "max_attempts": 10}


class DynamoClients:
    """The DynamoDB and DynamoDB Streams clients of one endpoint (created on first use;
    boto3 clients are thread-safe)."""

    def __init__(self, url: EndpointURL, pool: int = 32) -> None:
        self.url, self.pool = url, pool
        self._clients: dict[str, Any] = {}

    @property
    def where(self) -> str:
        """How messages name the service: the endpoint URL, or AWS and its region."""
        endpoint = self.url.query.get("endpoint_url")
        return endpoint or f"AWS region {self.region or '(default)'}"

    @property
    def region(self) -> str:
        return self.url.query.get("region", "")

    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    def streams(self) -> Any:
        return self._client("dynamodbstreams")

    def _client(self, service: str) -> Any:
        found = self._clients.get(service)
        if found is None:
            found = self._clients[service] = self._make(service)
        return found

    def _make(self, service: str) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise ConfigError(
                "dynamodb:// endpoints need boto3: pip install 'opendms[dynamodb]'"
            ) from exc
        q = self.url.query
        session = boto3.Session(profile_name=q["profile"]) if q.get("profile") else boto3.Session()
        config = Config(
            retries=_RETRIES,
            max_pool_connections=self.pool,
            connect_timeout=5,
            read_timeout=60,
        )
        kwargs: dict[str, Any] = {"config": config}
        if q.get("endpoint_url"):
            kwargs["endpoint_url"] = q["endpoint_url"]
        if self.region:
            kwargs["region_name"] = self.region
        if q.get("aws_access_key_id"):
            kwargs["aws_access_key_id"] = q["aws_access_key_id"]
            kwargs["aws_secret_access_key"] = q.get("aws_secret_access_key", "")
        try:
            return session.client(service, **kwargs)
        except Exception as exc:  # botocore: no region, unknown profile, bad endpoint URL
            raise EndpointError(str(self.url), describe_error(exc)) from None


def error_code(exc: BaseException) -> str:
    """The DynamoDB error code of a botocore ``ClientError`` ('' for other errors)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def describe_error(exc: BaseException) -> str:
    """A one-line description of a boto3/botocore error (never its credentials)."""
    code = error_code(exc)
    if code:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", "")
        return f"{code}: {message}" if message else code
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
