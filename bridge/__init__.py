"""Crossband runtime: relay, endpoint, floor control, store-and-forward, audit, audio, CLI."""
