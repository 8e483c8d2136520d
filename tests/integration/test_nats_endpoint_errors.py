"""What a ``nats://`` endpoint says when it cannot be used: a refused login is an
AuthenticationError (no password in it), an unreachable server a ConnectError, a server
without JetStream says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from opendms.endpoints import check_endpoint, open_target
from opendms.errors import AuthenticationError, ConnectError, EndpointError
from tests.support.brokers import NatsServer
from tests.support.servers import HOST, free_port

pytestmark = pytest.mark.brokers


class _LoginNats(NatsServer):
    """nats-server with one user, ``opendms`` / ``s3cret!``."""

    def _command(self, tmp: Path) -> list[str]:
        return [*super()._command(tmp), "--user", "opendms", "--pass", "s3cret!"]


class _PlainNats(NatsServer):
    """nats-server without JetStream."""

    def _command(self, tmp: Path) -> list[str]:
        return [c for c in super()._command(tmp) if c != "-js"]


def test_a_refused_login_is_an_authentication_error() -> None:
    with _LoginNats() as server:
        where = f"{HOST}:{server.port}"
        assert "NATS JetStream server 2." in check_endpoint(f"nats://opendms:s3cret%21@{where}/p")
        with pytest.raises(AuthenticationError, match="refused the user and password") as caught:
            check_endpoint(f"nats://opendms:wrong-pw@{where}/p")
    assert "wrong-pw" not in str(caught.value)


def test_an_unreachable_server_is_a_connect_error() -> None:
    with pytest.raises(ConnectError, match="cannot connect to the NATS server"):
        check_endpoint(f"nats://{HOST}:{free_port()}/p", {"TimeoutSeconds": 2})


def test_a_server_without_jetstream_says_so() -> None:
    with _PlainNats() as server:
        url = f"nats://{HOST}:{server.port}/p"
        for call in (lambda: check_endpoint(url), lambda: open_target(url)):
            with pytest.raises(EndpointError, match="JetStream is not enabled"):
                call()
