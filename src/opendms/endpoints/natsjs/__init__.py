"""The NATS JetStream target engine (``nats://``)."""
