"""The Cursor-on-Target adapter: TAK positions, GeoChat and emergencies on a channel."""
