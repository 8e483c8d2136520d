"""Lake endpoint: ``file:///dir`` (local) and ``s3://bucket/prefix`` (S3-compatible).

Settings come from the task's endpoint settings (keys or a DMS extra
connection attribute string) and from the URL query; for S3 the URL query may
name ``endpoint_url`` and ``region``, and credentials come from the standard
AWS environment variables. The engine object is
:data:`opendms.endpoints.lake.engine.ENGINE`.
"""
