"""SQLite endpoint: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``.

The engine object is :data:`opendms.endpoints.sqlite.engine.ENGINE`.
"""

from __future__ import annotations

from opendms.endpoints.base import EndpointURL
from opendms.errors import EndpointError

__all__ = ["database_path"]


def database_path(url: EndpointURL) -> str:
    """The file path of a sqlite URL (``sqlite:///a.db`` is relative, four slashes absolute)."""
    path = url.path[1:] if url.path.startswith("/") else url.path
    if url.host:
        path = f"{url.host}/{path}"
    if not path:
        raise EndpointError(str(url), "no database file in the URL (sqlite:///path/to/file.db)")
    return path
