"""The Redis Streams target engine (``redis://``)."""
