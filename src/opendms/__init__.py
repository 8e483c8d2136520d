"""opendms: an open-source, self-hosted database migration service."""

__version__ = "0.1.0"
