"""The XMPP adapter: multi-user chat rooms (XEP-0045) as Crossband channels' text."""
