"""``opendms serve``: run the server (the AWS DMS JSON API) with uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

DEFAULT_STATE = Path.home() / ".opendms" / "server"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8731, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--state",
    "state",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE,
    show_default=True,
    help="The server's state folder (endpoints, tasks, task files).",
)
@click.option("--region", default="us-east-1", show_default=True, help="Region in ARNs.")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback host (no TLS, no auth).")
def serve(host: str, port: int, state: Path, region: str, insecure: bool) -> None:
    """Serve the AWS DMS JSON API (boto3, the AWS CLI) on HOST:PORT."""
    import uvicorn

    from opendms.server.app import create_app

    if not is_loopback(host) and not insecure:
        raise click.UsageError(
            f"--host {host} is not a loopback address; the server has no TLS or "
            "authentication yet: pass --insecure to serve it anyway"
        )
    uvicorn.run(create_app(state, region), host=host, port=port, log_level="warning")
