"""The relay protocol both sides speak (DESIGN §5), with no I/O.

- :mod:`bridge.wire.control`: control messages, their table and strict parser; also re-exports
  the media framing, so callers import it as ``p``;
- :mod:`bridge.wire.fields`: what each field of a control message may hold;
- :mod:`bridge.wire.media`: SFrame frames over WebSocket binary messages and UDP datagrams;
- :mod:`bridge.wire.codes`: every wire error code (``Code``);
- :mod:`bridge.wire.auth`: the authentication transcripts;
- :mod:`bridge.wire.floor`: floor-control events and state as messages.

Every parser here raises only :class:`~bridge.errors.RemoteProtocolError` with a ``Code``.
"""
