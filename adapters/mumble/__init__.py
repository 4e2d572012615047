"""The Mumble adapter: a Mumble channel as a Crossband talkgroup (voice and channel chat)."""
