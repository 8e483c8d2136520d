"""Federated queries through the server (``POST /api/v1/query``, the console's Query
page): the server's endpoints named by their identifiers."""

from __future__ import annotations

import pyarrow as pa

from opendms.query.output import json_value
from opendms.query.run import QueryOptions, explain, run_query
from opendms.server.resources import ResourceStore, endpoint_url
from opendms.server.rest_models import QueryIn, QueryOut, QuerySourceOut


def server_query(resources: ResourceStore, made: QueryIn) -> QueryOut:
    """Run (or, with ``explain``, plan) ``made`` over the server's endpoints and the
    ``endpoints`` it names; at most ``max_rows`` rows of the answer."""
    endpoints = {e.identifier: endpoint_url(e)[0] for e in resources.endpoints()}
    keys = {name: tuple(cols) for name, cols in made.keys.items()}
    options = QueryOptions({**endpoints, **made.endpoints}, keys)
    result = (explain if made.explain else run_query)(made.sql, options)
    table = result.table if result.table.num_columns else pa.table({})
    rows = [] if made.explain else table.slice(0, made.max_rows).to_pylist()
    return QueryOut(
        columns=table.column_names,
        rows=[[json_value(v) for v in row.values()] for row in rows],
        row_count=len(rows) if made.explain else table.num_rows,
        truncated=table.num_rows > made.max_rows and not made.explain,
        seconds=round(result.seconds, 4),
        sources=[
            QuerySourceOut(
                table=str(read.request.scan.name),
                endpoint=read.endpoint,
                request=read.request.text,
                rows=read.rows,
                seconds=round(read.seconds, 4),
            )
            for read in result.reads
        ],
        duckdb_sql=result.sql,
    )
