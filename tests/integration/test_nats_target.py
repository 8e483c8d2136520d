"""SQLite → NATS JetStream, full load and CDC, the task SIGKILLed mid-stream twice: the
stream, read with nats-py's own JetStream consumer, holds every change once, in order
per key (``Nats-Msg-Id`` lets JetStream drop what a restarted task publishes again)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.integration.brokercdc import TASK, body, check_records, run_with_kills
from tests.support.brokers import NatsServer


async def _consume(server: str, stream: str, subject: str) -> list[dict[str, Any]]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(server)
    try:
        js = nc.jetstream()
        config = ConsumerConfig(ack_policy=AckPolicy.NONE)
        sub = await js.pull_subscribe(subject, stream=stream, config=config)
        left = (await sub.consumer_info()).num_pending
        out: list[dict[str, Any]] = []
        while left:
            for msg in await sub.fetch(min(left, 500), timeout=10):
                msg_id = (msg.headers or {}).get("Nats-Msg-Id")
                out.append({"id": msg_id, "record": body(msg.data)})
                left -= 1
        return out
    finally:
        await nc.close()


def test_sqlite_to_nats_with_kills_loses_and_repeats_nothing(
    nats_server: NatsServer, nats_url: str, tmp_path: Path
) -> None:
    writer = run_with_kills(tmp_path, nats_url)
    prefix = nats_url.rsplit("/", 1)[1]
    records = asyncio.run(
        _consume(nats_server.server_url, f"OPENDMS_{prefix}_{TASK}", f"{prefix}.{TASK}.main.orders")
    )
    check_records(records, writer)
