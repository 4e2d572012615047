"""The config decoder's fuzzer: arbitrary YAML-ish data into both loaders.

Random nested mappings, lists and scalars, under the real setting names and random ones (the
relay's ``limits``, the endpoint's ``rtp`` with its channels, inputs and outputs), and random
text as a file. The only acceptable outcomes: a typed settings object whose values are in range
(and, for the relay, a core ``RelayConfig`` built from it), or one ``ConfigError`` line that
starts with the file's name. Anything else (a ``TypeError``, a ``ValueError``, a traceback) is
a bug.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bridge.cli.endpoint import endpoint_config, load_endpoint_config
from bridge.config import EndpointSettings, RelayLimits, RelaySettings, parse_settings
from bridge.errors import ConfigError
from bridge.relay.config import load_config, relay_config

RELAY_FILE = "/etc/crossband/relay.yaml"
ENDPOINT_FILE = "/etc/crossband/endpoint.yaml"
RELAY_KEYS = [*RelaySettings.model_fields]
LIMIT_KEYS = [*RelayLimits.model_fields]
ENDPOINT_KEYS = [*EndpointSettings.model_fields]
RTP_KEYS = ["rate", "channels", "channel", "codec", "priority", "bitrate", "jitter", "input"]
RTP_KEYS += ["output", "port", "host", "group", "payload", "payloads", "name", "pt", "min_ms"]
RTP_KEYS += ["clock_rate", "hang_time", "ssrc_mode", "ptime_ms", "rtcp_interval", "max_ms"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        ["ws://127.0.0.1:1/ws", "wss://h/ws", "udp", "ws", "pcmu", "opus", "normal", "auto"]
        + ["3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "a\0b", "~", "../x", "16000"]
    ),
    st.sampled_from([0, 1, 5004, 8000, 16000, 65535, 65536, -1, 0.5, 1e308, 2**63]),
)


def yamlish(names: list[str]) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.sampled_from(names), st.text(max_size=6), st.integers(), st.none())
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
        max_leaves=25,
    )


def mostly(good: st.SearchStrategy[Any], names: list[str]) -> st.SearchStrategy[Any]:
    """Usually a plausible value (7 in 8), sometimes anything at all."""
    return st.one_of(*[good] * 7, yamlish(names))


def document(plausible: dict[str, st.SearchStrategy[Any]], required: list[str]) -> Any:
    """A mapping of the real settings (values usually plausible, the required ones usually all
    present), sometimes with a stray key, sometimes not a mapping at all."""
    names = list(plausible)
    values = {k: mostly(v, names) for k, v in plausible.items()}
    mapping = st.builds(
        lambda req, opt, stray: {**req, **opt, **stray},
        st.one_of(
            *[st.fixed_dictionaries({k: plausible[k] for k in required})] * 3,
            st.fixed_dictionaries({}, optional={k: values[k] for k in required}),
        ),
        st.fixed_dictionaries({}, optional={k: values[k] for k in names if k not in required}),
        st.one_of(st.just({}), st.just({}), st.dictionaries(st.text(max_size=8), scalars)),
    )
    return st.one_of(mapping, mapping, mapping, yamlish(names))


paths = st.sampled_from(["t.json", "/abs/r.db", "a.log", "~/x", "../up/y.crl", "d/e.pem"])
ports = st.integers(min_value=-2, max_value=65537)
positive = st.one_of(st.floats(min_value=1e-3, max_value=1e6), st.integers(1, 10**6))
rtp_io = st.fixed_dictionaries(
    {"port": ports, "payload": st.sampled_from(["pcmu", "pcma", "l16", "opus", "gsm"])},
    optional={
        "host": st.sampled_from(["127.0.0.1", "::1", "239.1.2.3", "bad host"]),
        "hang_time": positive,
        "ssrc_mode": st.sampled_from(["per-burst", "continuous", "x"]),
    },
)
rtp_channel = st.fixed_dictionaries(
    {
        "channel": st.one_of(st.sampled_from(["c1", "c2", "c3"]), st.text(max_size=8)),
        "input": mostly(rtp_io, RTP_KEYS),
    },
    optional={
        "output": mostly(rtp_io, RTP_KEYS),
        "priority": st.sampled_from(["normal", "high", "emergency", "urgent"]),
        "codec": st.sampled_from(["opus", "l16", "g729"]),
        "bitrate": st.one_of(st.integers(6000, 510000), st.integers(0, 600000)),
        "jitter": st.fixed_dictionaries({}, optional={"min_ms": ports, "max_ms": ports}),
    },
)
limits = st.fixed_dictionaries({}, optional={k: mostly(positive, LIMIT_KEYS) for k in LIMIT_KEYS})
relay_docs = document(
    {
        "relay_key": paths,
        "passphrase_env": st.sampled_from(["RELAY_PASS", "bad name"]),
        "emergency_max_talk_time": st.one_of(st.none(), positive),
        "trust_bundle": paths,
        "database": paths,
        "audit_log": paths,
        "revocation_lists": st.lists(paths, max_size=3),
        "port": ports,
        "udp_port": st.one_of(ports, st.booleans()),
        "relay_id": st.text(max_size=10),
        "host": st.sampled_from(["0.0.0.0", "127.0.0.1", " x"]),
        "max_talk_time": positive,
        "message_ttl": positive,
        "audit_fail_closed": st.booleans(),
        "event_loop": st.sampled_from(["auto", "uvloop", "asyncio", "trio"]),
        "limits": limits,
        "tls_cert": paths,
        "tls_key": paths,
    },
    ["trust_bundle", "database", "audit_log"],
)
ENDPOINT_BASE = {
    "device_key": "k",
    "credential": "c",
    "trust_bundle": "t",
    "state": "s",
    "relay": "wss://relay.example/ws",
}
endpoint_docs = document(
    {
        "passphrase_env": st.sampled_from(["GW_PASS", "$X"]),
        "relay_key": st.sampled_from(["3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "zz"]),
        "device_key": paths,
        "credential": paths,
        "trust_bundle": paths,
        "state": paths,
        "relay": st.sampled_from(["ws://127.0.0.1:8443/ws", "wss://relay.example/ws", "ws:/x"]),
        "transport": st.sampled_from(["udp", "ws", "tcp"]),
        "tls_ca": paths,
        "revocation_lists": st.lists(paths, max_size=3),
        "rtp": st.fixed_dictionaries(
            {"channels": st.lists(mostly(rtp_channel, RTP_KEYS), min_size=1, max_size=3)},
            optional={"rate": st.sampled_from([8000, 16000, 48000, "16000"])},
        ),
    },
    ["device_key", "credential", "trust_bundle", "state", "relay"],
)


# the RTP section on its own, under otherwise valid settings, so that its loader is reached
rtp_docs = st.builds(
    lambda rtp: {**ENDPOINT_BASE, "rtp": rtp},
    st.fixed_dictionaries(
        {"channels": st.lists(mostly(rtp_channel, RTP_KEYS), min_size=1, max_size=3)},
        optional={"rate": st.sampled_from([8000, 16000, 48000, "16000"])},
    ),
)


def refused_well(exc: ConfigError, file: str) -> None:
    text = str(exc)
    assert text.startswith(f"{file}: ") and "\n" not in text and "\r" not in text, text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(relay_docs)
def test_relay_decoder_raises_only_config_error(doc: Any) -> None:
    try:
        cfg = parse_settings(RelaySettings, doc, RELAY_FILE)
    except ConfigError as exc:
        refused_well(exc, RELAY_FILE)
        return
    core = relay_config(cfg)
    assert 0 <= cfg.port <= 65535 and (cfg.udp_port is False or 0 <= cfg.udp_port <= 65535)
    for value in (core.control_rate, core.media_rate, core.max_talk_time, core.auth_timeout):
        assert isinstance(value, float) and value > 0 and math.isfinite(value)
    assert core.control_burst >= 1 and core.media_burst >= 1
    assert 1 <= core.max_unauthenticated <= core.max_connections
    assert all(isinstance(p, Path) for p in (cfg.trust_bundle, *cfg.revocation_lists))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(endpoint_docs, rtp_docs))
def test_endpoint_decoder_raises_only_config_error(doc: Any) -> None:
    try:
        cfg = endpoint_config(doc, ENDPOINT_FILE)
    except ConfigError as exc:
        refused_well(exc, ENDPOINT_FILE)
        return
    assert cfg.settings.transport in ("udp", "ws")
    assert cfg.settings.relay.startswith(("ws://", "wss://"))
    assert all(isinstance(p, Path) for p in (cfg.settings.state, *cfg.settings.revocation_lists))
    assert (cfg.settings.rtp is None) == (cfg.rtp == [])


texts = st.one_of(
    st.text(max_size=200),
    st.builds(yaml.safe_dump, relay_docs),
    st.builds(lambda s: s.replace(":", ": [", 1), st.builds(yaml.safe_dump, endpoint_docs)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.binary(max_size=40))
@example("when: 2026-13-45\n", b"")  # PyYAML builds the date and raises ValueError
@example("relay: x\n", b"\xff\xfe")  # not UTF-8
@example("[" * 5000, b"")  # deeper than the parser's stack
def test_loaders_refuse_any_file_with_config_error(text: str, tail: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        for content in (text.encode(), text.encode() + tail):
            path.write_bytes(content)
            for load in (load_config, load_endpoint_config):
                try:
                    load(path)
                except ConfigError as exc:
                    refused_well(exc, str(path))
