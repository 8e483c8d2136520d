"""DynamoDB and Streams API calls of the source roles, their errors translated once here
into opendms errors naming the endpoint and the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opendms.endpoints.dynamodb.client import describe_error, error_code
from opendms.errors import (
    ConnectError,
    EndpointError,
    OpenDMSError,
    PrivilegeError,
    ResourceError,
    TableError,
)

__all__ = ["call", "translate"]

_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "LimitExceededException",
    "RequestLimitExceeded",
}
_DENIED = {"AccessDeniedException", "UnrecognizedClientException"}


def translate(where: str, table: str, exc: Exception) -> OpenDMSError:
    """``exc`` (botocore) as the opendms error a user reads (``where``: the endpoint)."""
    if isinstance(exc, OpenDMSError):
        return exc
    code, text = error_code(exc), describe_error(exc)
    if code == "ResourceNotFoundException":
        return TableError(table, f"not found at {where} ({text})")
    if code in _THROTTLED:
        return ResourceError(where, f"table {table}: throttled ({text})")
    if code in _DENIED:
        return PrivilegeError(where, f"table {table}: {text}")
    if not code and "Connect" in type(exc).__name__:
        return ConnectError(where, text)
    return EndpointError(where, f"table {table}: {text}" if table else text)


def call(
    where: str, table: str, fn: Callable[..., dict[str, Any]], **kwargs: Any
) -> dict[str, Any]:
    """``fn(**kwargs)`` (a boto3 client method), its errors translated."""
    try:
        return fn(**kwargs)
    except Exception as exc:  # botocore: ClientError, connection errors
        raise translate(where, table, exc) from exc
