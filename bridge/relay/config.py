"""The relay's configuration file, and building a running relay from it.

:func:`load_config` reads ``relay.yaml``; :func:`build_server` turns it into a
:class:`~bridge.relay.server.RelayServer` over a SQLite store and an audit log; :func:`serve`
runs it until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
from pathlib import Path
from typing import Any

from bridge.config import load_yaml_config
from bridge.errors import ConfigError
from bridge.relay.audit import BackgroundAuditLog
from bridge.relay.core import RelayConfig, RelayCore
from bridge.relay.server import RelayServer
from bridge.relay.store import SqliteStore
from crypto.agreement import RevocationList, verify_revocation_list
from crypto.errors import VerificationError
from crypto.identity import TrustBundle
from crypto.keyfile import load_relay_key


def load_config(path: str | Path) -> dict[str, Any]:
    return load_yaml_config(
        path,
        "relay",
        ("trust_bundle", "database", "audit_log"),
        ("trust_bundle", "database", "audit_log", "tls_cert", "tls_key", "relay_key"),
    )


def build_server(cfg: dict[str, Any]) -> RelayServer:
    paths = {
        k: cfg[k]
        for k in ("trust_bundle", "database", "audit_log", "tls_cert", "tls_key")
        if cfg.get(k)
    }
    try:
        trust = TrustBundle.decode(paths["trust_bundle"].read_bytes())
    except (OSError, VerificationError) as exc:
        raise ConfigError(f"trust bundle {paths['trust_bundle']}: {exc}")
    crls: dict[str, RevocationList] = {}
    for path in cfg["revocation_lists"]:
        try:
            rl = verify_revocation_list(RevocationList.decode(path.read_bytes()), trust)
        except (OSError, VerificationError) as exc:
            raise ConfigError(f"revocation list {path}: {exc}")
        if rl.number > getattr(crls.get(rl.agency), "number", -1):
            crls[rl.agency] = rl
    signing_key = None
    if cfg.get("relay_key"):
        passphrase = os.environ.get(cfg["passphrase_env"]) if cfg.get("passphrase_env") else None
        key_id, signing_key = load_relay_key(cfg["relay_key"], passphrase)
        if key_id != str(cfg.get("relay_id", "relay")):
            raise ConfigError(f"relay key {cfg['relay_key']} is for {key_id!r}, not relay_id")
    limits = cfg.get("limits", {}) or {}
    config = RelayConfig(
        relay_id=str(cfg.get("relay_id", "relay")),
        signing_key=signing_key,
        max_talk_time=float(cfg.get("max_talk_time", 60)),
        message_ttl=float(cfg.get("message_ttl", 7 * 86400)),
        control_rate=float(limits.get("control_rate", 50)),
        control_burst=float(limits.get("control_burst", 200)),
        media_rate=float(limits.get("media_rate", 120)),
        media_burst=float(limits.get("media_burst", 240)),
    )
    store = SqliteStore(paths["database"])
    audit = BackgroundAuditLog(paths["audit_log"])
    core = RelayCore(trust, store, audit, config, crls)
    ctx = None
    if "tls_cert" in paths:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(paths["tls_cert"], paths.get("tls_key"))
    return RelayServer(
        core,
        host=str(cfg.get("host", "127.0.0.1")),
        port=int(cfg.get("port", 8443)),
        udp_port=None if cfg.get("udp_port") is False else int(cfg.get("udp_port", 8444)),
        ssl_context=ctx,
    )


async def serve(cfg: dict[str, Any], ready_file: Path | None = None) -> None:
    server = build_server(cfg)
    await server.start()
    if ready_file is not None:
        ready_file.write_text(
            json.dumps({"url": server.url, "udp_port": server.udp_port, "port": server.port})
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"crossband relay listening on {server.url} (udp {server.udp_port})", flush=True)
    await stop.wait()
    await server.stop()
    server.core.store.close()
    server.core.audit.close()
