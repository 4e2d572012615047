"""``crossband endpoint --config endpoint.yaml``: run one device's endpoint (and its adapters).

The configuration names the device's key file and credential, the trust bundle, the relay,
the state file, and optionally revocation lists and RTP gateway mappings::

    device_key: keys/us-cbp_gw-blaine.key     # 0600; sealed keys need passphrase_env
    credential: keys/us-cbp_gw-blaine.cred
    trust_bundle: trust.json
    relay: ws://127.0.0.1:8443/ws             # wss:// in production
    state: state/gw-blaine.db
    transport: udp                            # or ws where UDP is blocked
    passphrase_env: CROSSBAND_DEVICE_PASS     # optional
    relay_key: <base64url>                    # optional: pin the relay (crossband keys relay)
    revocation_lists: [us-cbp.crl]            # optional
    rtp: [...]                                # optional, see adapters/rtp/gateway.py

The process logs what happens (talker changes, channel epochs, message ids and sizes) and
never any content.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from bridge.config import load_yaml_config
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.errors import ConfigError
from crypto.agreement import RevocationList, verify_revocation_list
from crypto.errors import VerificationError
from crypto.identity import Credential, TrustBundle, verify_credential
from crypto.keyfile import load_device

log = logging.getLogger("crossband.endpoint")


def load_endpoint_config(path: str | Path) -> dict[str, Any]:
    keys = ("device_key", "credential", "trust_bundle", "state")
    cfg = load_yaml_config(path, "endpoint", (*keys, "relay"), keys)
    if cfg.get("transport", "udp") not in ("udp", "ws"):
        raise ConfigError(f"{path}: transport must be 'udp' or 'ws'")
    return cfg


def build_endpoint(cfg: dict[str, Any], now: float) -> Endpoint:
    passphrase = os.environ.get(cfg["passphrase_env"]) if cfg.get("passphrase_env") else None
    device, keys = load_device(cfg["device_key"], passphrase)
    try:
        trust = TrustBundle.decode(Path(cfg["trust_bundle"]).read_bytes())
        cred = Credential.decode(Path(cfg["credential"]).read_bytes())
    except (OSError, VerificationError) as exc:
        raise ConfigError(f"cannot load trust bundle or credential: {exc}")
    if cred.device != device or cred.sign_key != keys.sign.public:
        raise ConfigError(f"credential {cfg['credential']} does not belong to key {device}")
    crls: dict[str, RevocationList] = {}
    for p in cfg["revocation_lists"]:
        try:
            rl = verify_revocation_list(RevocationList.decode(Path(p).read_bytes()), trust)
        except (OSError, VerificationError) as exc:
            raise ConfigError(f"revocation list {p}: {exc}")
        crls[rl.agency] = rl
    verify_credential(cred, trust, now, crls)  # refuse to start with a dead credential
    return Endpoint(
        cred,
        keys,
        trust,
        str(cfg["relay"]),
        str(cfg["state"]),
        transport=cfg.get("transport", "udp"),
        revocations=crls,
    )


def describe(event: ev.Event) -> str:
    """A log line for an event: metadata only, never payloads or bodies."""
    match event:
        case ev.Voice():
            return ""  # one per 20 ms: too chatty for the log
        case ev.Message(channel=ch, id=i, sender=s, kind=k, body=b):
            return f"event=message channel={ch} id={i} sender={s} kind={k} size={len(b)}"
        case ev.TalkerChanged(channel=ch, talker=t, priority=pr, reason=r):
            return f"event=talker channel={ch} talker={t} priority={pr} reason={r}"
        case ev.ChannelUpdated(channel=ch, epoch=e, roster=ro, removed=rm):
            return f"event=channel channel={ch} epoch={e} members={len(ro)} removed={rm}"
        case ev.BurstSealed(channel=ch, sender=s, frames=n, verified=v):
            return f"event=burst-seal channel={ch} sender={s} frames={n} verified={v}"
        case ev.Emergency(channel=ch, active=a, by=b):
            return f"event=emergency channel={ch} active={a} by={b}"
        case ev.Error(code=c, detail=d):
            return f"event=error code={c} detail={d!r}"
        case _:
            return f"event={type(event).__name__.lower()}"


async def run_endpoint(cfg: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    endpoint = build_endpoint(cfg, time.time())
    gateway = None
    await endpoint.start()
    if cfg.get("rtp"):
        from bridge.gateway.rtp import RtpGateway, load_gateway_config

        gateway = RtpGateway(endpoint, load_gateway_config(cfg["rtp"]))
        await gateway.start(pump_events=False)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"crossband endpoint {endpoint.device} -> {cfg['relay']}", flush=True)
    waiter = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            getter = asyncio.create_task(endpoint.events.get())
            done, _ = await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                line = describe(getter.result())
                if line:
                    log.info(line)
                if gateway is not None:
                    gateway.handle_event(getter.result())
            else:
                getter.cancel()
    finally:
        if gateway is not None:
            await gateway.stop()
        await endpoint.stop()


def _run(args: argparse.Namespace) -> int:
    asyncio.run(run_endpoint(load_endpoint_config(args.config)))
    return 0


def register(subparsers: Any) -> None:
    sp = subparsers.add_parser("endpoint", help="run a device endpoint (and its RTP gateway)")
    sp.add_argument("--config", required=True, help="endpoint.yaml")
    sp.set_defaults(func=_run)
