"""The dispatch console: a web page served by a console endpoint (DESIGN §8)."""
