"""RFC 3550 radio-over-IP adapter: sans-IO packet and stream logic plus an asyncio driver."""
