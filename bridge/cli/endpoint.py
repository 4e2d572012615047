"""``crossband endpoint --config endpoint.yaml``: run one device's endpoint (and its adapters).

The configuration (:class:`~bridge.config.EndpointSettings`; docs/operators.md lists every
setting) names the device's key file and credential, the trust bundle, the relay, the state
file, and optionally the relay's pinned key, the CA of its TLS certificate, revocation lists and
RTP gateway mappings::

    device_key: keys/us-cbp_gw-blaine.key     # 0600; sealed keys need passphrase_env
    credential: keys/us-cbp_gw-blaine.cred
    trust_bundle: trust.json
    relay: wss://relay.example.net:8443/ws    # ws:// for loopback testing only
    relay_key: <base64url>                    # pin the relay (printed by crossband keys relay)
    tls_ca: tls/ca.pem                        # optional: trust only this CA for wss://
    state: state/gw-blaine.db
    transport: udp                            # or ws where UDP is blocked
    passphrase_env: CROSSBAND_DEVICE_PASS     # optional
    revocation_lists: [us-cbp.crl]            # optional
    rtp: {...}                                # optional, see adapters/rtp/mapping.py
    xmpp: {...}                               # optional, see adapters/xmpp/mapping.py
    mumble: {...}                             # optional, see adapters/mumble/config.py
    cot: {...}                                # optional, see adapters/cot/config.py
    sip: {...}                                # optional, see adapters/sip/config.py

Every problem with the file, or with a file it names, is one ``ConfigError`` line naming the
file, the setting and the problem (exit status 2). The process logs what happens (talker
changes, channel epochs, message ids and sizes) and never any content.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sqlite3
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge.cli.native import NativeSections, load_native, native_bindings
from bridge.config import EndpointSettings, config_error, parse_settings, read_yaml
from bridge.endpoint import events as ev
from bridge.endpoint.endpoint import Endpoint
from bridge.gateway import Gateway
from crypto.agreement import RevocationList, verify_revocation_list
from crypto.errors import CrossbandError
from crypto.identity import Credential, TrustBundle, verify_credential
from crypto.keyfile import load_device

if TYPE_CHECKING:
    from adapters.rtp.mapping import ChannelMapping

log = logging.getLogger("crossband.endpoint")


@dataclass(frozen=True)
class EndpointConfig:
    """A validated endpoint.yaml: its settings, and its native sections checked by the adapters."""

    source: Path
    settings: EndpointSettings
    native: NativeSections = field(default_factory=NativeSections)

    @property
    def rtp(self) -> list[ChannelMapping]:
        return self.native.rtp


def endpoint_config(data: Any, source: str | Path) -> EndpointConfig:
    """Validate a parsed endpoint.yaml document (``source`` names the file in errors)."""
    s = parse_settings(EndpointSettings, data, source)
    return EndpointConfig(
        Path(source), s, load_native(s.rtp, s.xmpp, s.mumble, s.cot, source, s.sip)
    )


def load_endpoint_config(path: str | Path) -> EndpointConfig:
    return endpoint_config(read_yaml(path), path)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def tls_context(cfg: EndpointConfig) -> ssl.SSLContext | None:
    """With ``tls_ca``: a client context that trusts that CA only (and checks the host name)."""
    ca = cfg.settings.tls_ca
    if ca is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(ca))  # this CA only, hostname checked
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise config_error(
            cfg.source, "tls_ca", f"no CA certificate in {ca}: {_why(exc)}"
        ) from None


def build_endpoint(cfg: EndpointConfig, now: float) -> Endpoint:
    """Load the files the config names, check them, and build the (not started) endpoint."""
    s, src = cfg.settings, cfg.source
    passphrase = None
    if s.passphrase_env is not None:
        passphrase = os.environ.get(s.passphrase_env)
        if passphrase is None:
            problem = f"environment variable {s.passphrase_env} is not set"
            raise config_error(src, "passphrase_env", problem)
    try:
        device, keys = load_device(s.device_key, passphrase)
    except (OSError, CrossbandError) as exc:
        raise config_error(src, "device_key", _why(exc)) from None
    try:
        trust = TrustBundle.decode(s.trust_bundle.read_bytes())
    except (OSError, CrossbandError, ValueError) as exc:
        raise config_error(src, "trust_bundle", f"{s.trust_bundle}: {_why(exc)}") from None
    try:
        cred = Credential.decode(s.credential.read_bytes())
    except (OSError, CrossbandError, ValueError) as exc:
        raise config_error(src, "credential", f"{s.credential}: {_why(exc)}") from None
    if cred.device != device or cred.sign_key != keys.sign.public:
        problem = f"{s.credential} does not belong to the key in device_key ({device})"
        raise config_error(src, "credential", problem)
    crls: dict[str, RevocationList] = {}
    for i, path in enumerate(s.revocation_lists):
        try:
            rl = verify_revocation_list(RevocationList.decode(path.read_bytes()), trust)
        except (OSError, CrossbandError, ValueError) as exc:
            raise config_error(src, f"revocation_lists[{i}]", f"{path}: {_why(exc)}") from None
        held = crls.get(rl.agency)
        if held is None or rl.number > held.number:
            crls[rl.agency] = rl
    try:
        verify_credential(cred, trust, now, crls)  # refuse to start with a dead credential
    except CrossbandError as exc:
        raise config_error(src, "credential", f"refused: {_why(exc)}") from None
    ctx = tls_context(cfg)
    try:
        return Endpoint(
            cred,
            keys,
            trust,
            s.relay,
            str(s.state),
            transport=s.transport,
            ssl_context=ctx,
            revocations=crls,
            relay_key=s.relay_key,
        )
    except (OSError, sqlite3.Error, CrossbandError) as exc:
        raise config_error(src, "state", f"cannot open {s.state}: {_why(exc)}") from None


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


def native_gateway(endpoint: Endpoint, cfg: EndpointConfig) -> Gateway:
    """The gateway of the native sections: one adapter per mapped channel."""
    return Gateway(endpoint, native_bindings(cfg.native, cfg.source))


async def run_endpoint(cfg: EndpointConfig) -> None:
    loop = asyncio.get_running_loop()
    endpoint = build_endpoint(cfg, time.time())
    gateway = native_gateway(endpoint, cfg) if cfg.native else None
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.create_task(stop.wait())
    await endpoint.start()
    try:
        if gateway is not None:
            await gateway.start(pump_events=False)  # binds the RTP inputs: may fail (OSError)
        # What start-up built lives as long as the process: frozen, full collections walk
        # only what is young and cannot stall voice for the whole heap (as the relay does).
        gc.collect()
        gc.freeze()
        pinned = "pinned" if cfg.settings.relay_key is not None else "not pinned"
        print(
            f"crossband endpoint {endpoint.device} -> {cfg.settings.relay} ({pinned})", flush=True
        )
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
        waiter.cancel()
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
