"""``opendms serve``: the AWS DMS JSON API over :class:`~opendms.service.TaskService`.

``resources`` keeps DMS endpoints and replication tasks, ``dmsapi`` speaks the DMS
JSON 1.1 protocol, ``app`` is the Starlette application."""
