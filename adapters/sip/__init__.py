"""The SIP adapter: dispatch consoles and phones calling into (and called from) a channel."""
