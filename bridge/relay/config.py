"""The relay's configuration file, and building a running relay from it.

:func:`load_config` reads and validates ``relay.yaml`` (:class:`~bridge.config.RelaySettings`:
unknown keys and wrong types are refused); :func:`build_server` loads the files it names and
turns it into a :class:`~bridge.relay.server.RelayServer` over a SQLite store and an audit
log; :func:`serve` runs it until SIGINT/SIGTERM. Every failure on the way is one
:class:`~bridge.errors.ConfigError` line naming the file, the setting and the problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
from pathlib import Path

from bridge.config import RelaySettings, config_error, load_relay_settings
from bridge.relay.audit import BackgroundAuditLog
from bridge.relay.core import RelayCore
from bridge.relay.server import RelayServer
from bridge.relay.state import RelayConfig
from bridge.relay.store import SqliteStore
from crypto.agreement import RevocationList, verify_revocation_list
from crypto.errors import CrossbandError
from crypto.identity import TrustBundle
from crypto.keyfile import load_relay_key
from crypto.keys import SigningKey

__all__ = ["build_server", "load_config", "loop_name", "relay_config", "serve"]


def load_config(path: str | Path) -> RelaySettings:
    """``relay.yaml``, validated; paths in it are relative to its folder."""
    return load_relay_settings(path)


def relay_config(cfg: RelaySettings, signing_key: SigningKey | None = None) -> RelayConfig:
    """The core's :class:`RelayConfig` from the file's settings (one line per setting)."""
    limits = cfg.limits
    return RelayConfig(
        relay_id=cfg.relay_id,
        signing_key=signing_key,
        max_talk_time=cfg.max_talk_time,
        emergency_max_talk_time=cfg.emergency_max_talk_time,
        message_ttl=cfg.message_ttl,
        control_rate=limits.control_rate,
        control_burst=limits.control_burst,
        media_rate=limits.media_rate,
        media_burst=limits.media_burst,
        max_connections=limits.max_connections,
        max_unauthenticated=limits.max_unauthenticated,
        auth_timeout=limits.auth_timeout,
        send_queue_limit=limits.send_queue_limit,
        audit_fail_closed=cfg.audit_fail_closed,
    )


def _passphrase(cfg: RelaySettings, source: Path) -> str | None:
    if cfg.passphrase_env is None:
        return None
    value = os.environ.get(cfg.passphrase_env)
    if value is None:
        raise config_error(
            source, "passphrase_env", f"environment variable {cfg.passphrase_env} is not set"
        )
    return value


def _signing_key(cfg: RelaySettings, source: Path) -> SigningKey | None:
    if cfg.relay_key is None:
        return None
    passphrase = _passphrase(cfg, source)
    try:
        key_id, key = load_relay_key(cfg.relay_key, passphrase)
    except (OSError, CrossbandError) as exc:
        raise config_error(source, "relay_key", _why(exc)) from None
    if key_id != cfg.relay_id:
        raise config_error(
            source,
            "relay_key",
            f"{cfg.relay_key} is the key of {key_id!r}, but relay_id is {cfg.relay_id!r}",
        )
    return key


def _trust(cfg: RelaySettings, source: Path) -> tuple[TrustBundle, dict[str, RevocationList]]:
    try:
        trust = TrustBundle.decode(cfg.trust_bundle.read_bytes())
    except (OSError, CrossbandError, ValueError) as exc:
        raise config_error(source, "trust_bundle", f"{cfg.trust_bundle}: {_why(exc)}") from None
    crls: dict[str, RevocationList] = {}
    for i, path in enumerate(cfg.revocation_lists):
        try:
            rl = verify_revocation_list(RevocationList.decode(path.read_bytes()), trust)
        except (OSError, CrossbandError, ValueError) as exc:
            raise config_error(source, f"revocation_lists[{i}]", f"{path}: {_why(exc)}") from None
        held = crls.get(rl.agency)
        if held is None or rl.number > held.number:
            crls[rl.agency] = rl
    return trust, crls


def _tls(cfg: RelaySettings, source: Path) -> ssl.SSLContext | None:
    if cfg.tls_cert is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise config_error(source, "tls_cert", f"cannot load {cfg.tls_cert}: {_why(exc)}") from None
    return ctx


def build_server(cfg: RelaySettings, source: str | Path) -> RelayServer:
    """Load the files ``cfg`` names and build the (not yet started) relay server."""
    source = Path(source)
    trust, crls = _trust(cfg, source)
    config = relay_config(cfg, _signing_key(cfg, source))
    ctx = _tls(cfg, source)
    if cfg.cluster is not None:
        return _build_cluster_node(cfg, source, trust, crls, config, ctx)
    try:
        store = SqliteStore(cfg.database)
    except (OSError, CrossbandError) as exc:
        raise config_error(source, "database", f"cannot open {cfg.database}: {_why(exc)}") from None
    try:
        audit = BackgroundAuditLog(cfg.audit_log)
    except (OSError, CrossbandError) as exc:
        store.close()
        raise config_error(
            source, "audit_log", f"cannot open {cfg.audit_log}: {_why(exc)}"
        ) from None
    return RelayServer(
        RelayCore(trust, store, audit, config, crls),
        host=cfg.host,
        port=cfg.port,
        udp_port=None if cfg.udp_port is False else cfg.udp_port,
        ssl_context=ctx,
    )


def _build_cluster_node(
    cfg: RelaySettings,
    source: Path,
    trust: TrustBundle,
    crls: dict[str, RevocationList],
    config: RelayConfig,
    ctx: ssl.SSLContext | None,
) -> RelayServer:
    """``cluster:`` in relay.yaml: one node of several over NATS (:mod:`bridge.relay.nats`)."""
    from bridge.relay.nats.build import build_node  # nats-py is needed only then

    return build_node(cfg, source, trust, crls, config, ctx)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: the module of the running event loop."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


async def serve(cfg: RelaySettings, source: str | Path, ready_file: Path | None = None) -> None:
    """Build, start and run the relay until SIGINT or SIGTERM, then close it cleanly."""
    server = build_server(cfg, source)
    try:
        await server.start()
    except OSError as exc:  # address in use, not ours, or a host name that does not resolve
        server.core.store.close()
        server.core.audit.close()
        udp = "off" if cfg.udp_port is False else cfg.udp_port
        where = f"cannot listen on {cfg.host} port {cfg.port} (udp {udp})"
        raise config_error(source, "host, port, udp_port", f"{where}: {_why(exc)}") from None
    if ready_file is not None:
        # Written whole, then renamed: a reader polling for the file never sees it half-written.
        partial = ready_file.with_name(ready_file.name + ".partial")
        partial.write_text(
            json.dumps({"url": server.url, "udp_port": server.udp_port, "port": server.port})
        )
        partial.replace(ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(
        f"crossband relay listening on {server.url} (udp {server.udp_port}) loop={loop_name()}",
        flush=True,
    )
    await stop.wait()
    await server.stop()
    server.core.store.close()
    server.core.audit.close()
