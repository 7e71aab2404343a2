"""Due rows → dialer: callbacks, scheduled calls, retries, follow-ups (docs/scheduler.md)."""
