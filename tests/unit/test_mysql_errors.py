"""MySQL driver errors become one clear endpoint error; a connection that is gone is a
lost connection (ConnectError: retried as recoverable), whatever PyMySQL raised."""

from __future__ import annotations

import pytest

from opendms.endpoints.base import EndpointURL
from opendms.endpoints.mysql.conn import translate
from opendms.errors import ConnectError, EndpointError

URL = EndpointURL.parse("mysql://user:s3cret@db.example:3307/shop")


class InterfaceError(Exception):
    """Named as PyMySQL's: translate goes by the class name."""


@pytest.mark.parametrize(
    "exc",
    [
        AttributeError("'NoneType' object has no attribute 'sendall'"),
        AttributeError("'NoneType' object has no attribute 'settimeout'"),
        InterfaceError(0, ""),
        BrokenPipeError("Broken pipe"),
        OSError("Lost connection to MySQL server during query"),
    ],
)
def test_a_connection_that_is_gone_is_lost(exc: Exception) -> None:
    error = translate(exc, URL)
    assert isinstance(error, ConnectError)
    assert "db.example:3307 lost" in str(error)


def test_another_attribute_error_is_not_a_lost_connection() -> None:
    error = translate(AttributeError("'Cursor' object has no attribute 'foo'"), URL)
    assert type(error) is EndpointError
    assert "s3cret" not in str(error)
