"""``opendms serve``: run the server (the AWS DMS JSON API, the REST API) with uvicorn.

On first start it creates the server's token and prints it once with the file that
holds it; ``--show-token`` prints it again. A host that is not a loopback address needs
TLS (``--ssl-certfile`` and ``--ssl-keyfile``) or ``--insecure``."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path

import click

from opendms.errors import ConfigError

DEFAULT_STATE = Path.home() / ".opendms" / "server"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_host(host: str, certfile: Path | None, keyfile: Path | None, insecure: bool) -> None:
    if (certfile is None) != (keyfile is None):
        raise click.UsageError("--ssl-certfile and --ssl-keyfile go together")
    if not is_loopback(host) and certfile is None and not insecure:
        raise click.UsageError(
            f"--host {host} is not a loopback address: serve it with TLS "
            "(--ssl-certfile and --ssl-keyfile), or pass --insecure to serve it without"
        )


def _announce_token(state: Path, show: bool) -> None:
    from opendms.server.auth import TOKEN_FILE, load_or_create_token

    token, created = load_or_create_token(state)
    if created or show:
        where = state / TOKEN_FILE
        click.echo(f"API token (kept in {where}; `opendms serve --show-token` shows it): {token}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8731, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--state",
    "state",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE,
    show_default=True,
    help="The server's state folder (endpoints, tasks, task files, token, key).",
)
@click.option("--region", default="us-east-1", show_default=True, help="Region in ARNs.")
@click.option(
    "--access-keys",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A file of ACCESS_KEY_ID:SECRET lines: the DMS API verifies SigV4 signatures "
    "(also OPENDMS_ACCESS_KEYS).",
)
@click.option("--ssl-certfile", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--ssl-keyfile", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--insecure", is_flag=True, help="Allow a non-loopback host without TLS.")
@click.option("--show-token", is_flag=True, help="Print the API token and exit.")
@click.option(
    "--function",
    "functions",
    multiple=True,
    metavar="NAME=module:function",
    help="Serve a Python function at /functions/NAME (repeatable; needs the token).",
)
@click.option("--public-functions", is_flag=True, help="Serve the functions without the token.")
def serve(  # noqa: PLR0913 - the command's options
    host: str,
    port: int,
    state: Path,
    region: str,
    access_keys: Path | None,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
    insecure: bool,
    show_token: bool,
    functions: tuple[str, ...],
    public_functions: bool,
) -> None:
    """Serve the AWS DMS JSON API (boto3, the AWS CLI) and the REST API (/api/v1)."""
    if show_token:
        _announce_token(state, True)
        return
    _check_host(host, ssl_certfile, ssl_keyfile, insecure)
    import uvicorn

    from opendms.server.app import create_app
    from opendms.server.sigv4 import load_access_keys

    try:
        keys = load_access_keys(access_keys)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    _announce_token(state, False)
    named = dict(f.partition("=")[::2] for f in functions)
    sys.path.insert(0, os.getcwd())  # the functions' modules, as handlers', from here
    try:
        app = create_app(
            state, region, access_keys=keys, functions=named, public_functions=public_functions
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )
