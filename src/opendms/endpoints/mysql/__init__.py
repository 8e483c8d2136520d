"""MySQL and MariaDB endpoint: ``mysql://user:password@host:port/database``.

The engine object is :data:`opendms.endpoints.mysql.engine.ENGINE`.
"""
