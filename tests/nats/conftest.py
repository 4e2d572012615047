"""Fixtures of the NATS scale-out tests (see :mod:`tests.nats.rig`)."""

from tests.nats.rig import cluster, nodes, world

__all__ = ["cluster", "nodes", "world"]
