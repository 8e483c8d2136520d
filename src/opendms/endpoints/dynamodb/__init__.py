"""The DynamoDB engine: ``dynamodb://?region=...&endpoint_url=...`` endpoints.

A target (full load with parallel ``BatchWriteItem``, CDC per key in commit order with
its checkpoint in a DynamoDB item) shaped by the DMS ``object-mapping`` rules, and a
source (parallel ``Scan`` segments, CDC from DynamoDB Streams). Only the public DynamoDB
API is used, so the same endpoint works against AWS, dynalite or moto."""
