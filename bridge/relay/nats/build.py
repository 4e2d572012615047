"""Building one relay node of a NATS cluster from ``relay.yaml`` (its ``cluster:`` section).

Called by :func:`bridge.relay.config.build_server` when ``cluster:`` is present; everything
else in the file means what it means for the single relay. The ``database`` setting is not
used by a node: its store is JetStream (:mod:`bridge.relay.nats.jsstore`).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from bridge.config import RelaySettings, config_error
from bridge.relay.audit import BackgroundAuditLog
from bridge.relay.nats.core import NatsRelayCore
from bridge.relay.nats.driver import NatsBus, NatsRelayServer
from bridge.relay.nats.jsstore import JetStreamStore
from bridge.relay.state import RelayConfig
from crypto.agreement import RevocationList
from crypto.errors import CrossbandError
from crypto.identity import TrustBundle

__all__ = ["build_node"]


def build_node(
    cfg: RelaySettings,
    source: Path,
    trust: TrustBundle,
    crls: dict[str, RevocationList],
    config: RelayConfig,
    ctx: ssl.SSLContext | None,
) -> NatsRelayServer:
    cluster = cfg.cluster
    assert cluster is not None
    try:
        store = JetStreamStore(cluster.nats, cluster.node, cluster.replicas, cfg.message_ttl)
    except (OSError, CrossbandError) as exc:
        raise config_error(source, "cluster.nats", f"cannot use NATS: {exc}") from None
    try:
        audit = BackgroundAuditLog(cfg.audit_log)
    except (OSError, CrossbandError) as exc:
        store.close()
        raise config_error(source, "audit_log", f"cannot open {cfg.audit_log}: {exc}") from None
    bus = NatsBus(cluster.nats, cluster.node, store)
    core = NatsRelayCore(trust, store, audit, config, crls, node=cluster.node, bus=bus, remote=bus)
    return NatsRelayServer(
        core,
        bus,
        host=cfg.host,
        port=cfg.port,
        udp_port=None if cfg.udp_port is False else cfg.udp_port,
        ssl_context=ctx,
    )
