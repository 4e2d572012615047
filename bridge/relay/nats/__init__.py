"""The relay on several nodes sharing one country's NATS cluster (DESIGN §9, issue 14).

Chosen in ``relay.yaml`` with ``cluster: {nats: [urls], node: name}``; without it the relay is
the single process with SQLite, unchanged. The sans-IO :class:`~bridge.relay.core.RelayCore`
still decides everything it decides alone; the parts here carry its decisions between nodes:

* :mod:`~bridge.relay.nats.subjects`: subject and key names (one place).
* :mod:`~bridge.relay.nats.jsstore`: :class:`JetStreamStore`, the
  :class:`~bridge.relay.store.ForwardStore` on JetStream (a queue subject per member,
  de-duplicated by ``Nats-Msg-Id``, R3) and KV (relay state, floor leases), with a durable
  pull consumer per member that follows the member from node to node.
* :mod:`~bridge.relay.nats.floor`: the floor lease of a channel, a KV entry whose revision
  fences a stale owner (compare-and-set), as store ops run on the store thread.
* :mod:`~bridge.relay.nats.core`: :class:`NatsRelayCore`, the relay core with the hooks a
  cluster needs (no direct delivery, leased floor, remote commits and floor events).
* :mod:`~bridge.relay.nats.driver`: core subjects for voice, commits and floor events.
* :mod:`~bridge.relay.nats.build`: building the node from ``relay.yaml``.
"""
