"""PostgreSQL endpoint: ``postgresql://user:password@host:port/database``.

The engine object is :data:`opendms.endpoints.postgres.engine.ENGINE`.
"""
