"""Signed outbound webhooks: the worker that sends the outbox's deliveries (docs/webhooks.md)."""
