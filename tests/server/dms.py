"""DMS API calls the server tests share: a replication task, a database endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit


def make_task(
    dms: Any,
    src: str,
    dst: str,
    mappings: str,
    *,
    ident: str = "items-task",
    mtype: str = "full-load-and-cdc",
    settings: str = "",
) -> str:
    """CreateReplicationTask from ``src`` to ``dst``; the task's ARN."""
    extra = {"ReplicationTaskSettings": settings} if settings else {}
    task = dms.create_replication_task(
        ReplicationTaskIdentifier=ident,
        SourceEndpointArn=src,
        TargetEndpointArn=dst,
        ReplicationInstanceArn="arn:aws:dms:us-east-1:000000000000:rep:OPENDMS",
        MigrationType=mtype,
        TableMappings=mappings,
        **extra,
    )
    return str(task["ReplicationTask"]["ReplicationTaskArn"])


def db_endpoint(dms: Any, ident: str, kind: str, engine: str, url: str) -> str:
    """CreateEndpoint for the database of a ``postgresql://`` or ``mysql://`` URL."""
    u = urlsplit(url)
    made = dms.create_endpoint(
        EndpointIdentifier=ident,
        EndpointType=kind,
        EngineName=engine,
        ServerName=u.hostname,
        Port=u.port,
        DatabaseName=unquote(u.path.lstrip("/")),
        Username=unquote(u.username or ""),
        Password=unquote(u.password or ""),
    )
    return str(made["Endpoint"]["EndpointArn"])
