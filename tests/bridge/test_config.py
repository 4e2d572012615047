"""Configuration files: the shipped examples load into typed settings.

The detailed checks are beside this file: ``test_config_relay.py`` (relay.yaml),
``test_config_endpoint.py`` (endpoint.yaml, RTP mappings, TLS CA), ``test_config_pinning.py``
(relay_key and tls_ca end to end) and ``test_config_fuzz.py`` (the decoder's fuzzer).
"""

from __future__ import annotations

from pathlib import Path

from bridge.cli.endpoint import load_endpoint_config
from bridge.config import EndpointSettings, RelaySettings
from bridge.relay.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def test_example_relay_config_loads() -> None:
    cfg = load_config(EXAMPLES / "relay.yaml")
    assert isinstance(cfg, RelaySettings)
    assert cfg.trust_bundle == EXAMPLES / "trust.json"
    assert cfg.tls_cert == EXAMPLES / "tls" / "relay.crt"
    assert len(cfg.revocation_lists) == 3 and cfg.udp_port == 8444
    assert cfg.relay_key == EXAMPLES / "relay.key"


def test_example_endpoint_config_loads() -> None:
    cfg = load_endpoint_config(EXAMPLES / "endpoint-gateway.yaml")
    assert isinstance(cfg.settings, EndpointSettings)
    assert cfg.settings.state == Path("/var/lib/crossband/gw-blaine.db")
    assert cfg.settings.relay_key is not None and cfg.settings.tls_ca == EXAMPLES / "tls/ca.pem"
    (mapping,) = cfg.rtp
    assert mapping.channel == "shiprider-4471" and mapping.input is not None
