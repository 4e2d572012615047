"""Configuration files: the shipped examples load, broken ones are refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.rtp.mapping import load_gateway_config
from bridge.cli.endpoint import load_endpoint_config
from bridge.errors import ConfigError
from bridge.relay.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def test_example_relay_config_loads() -> None:
    cfg = load_config(EXAMPLES / "relay.yaml")
    assert cfg["trust_bundle"] == EXAMPLES / "trust.json"
    assert cfg["tls_cert"] == EXAMPLES / "tls" / "relay.crt"
    assert len(cfg["revocation_lists"]) == 3 and cfg["udp_port"] == 8444
    assert cfg["relay_key"] == EXAMPLES / "relay.key"


def test_example_endpoint_config_loads() -> None:
    cfg = load_endpoint_config(EXAMPLES / "endpoint-gateway.yaml")
    assert cfg["state"] == Path("/var/lib/crossband/gw-blaine.db")
    (mapping,) = load_gateway_config(cfg["rtp"])
    assert mapping.channel == "shiprider-4471" and mapping.input is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "expected a mapping"),
        ("database: x.db\naudit_log: a.log\n", "missing 'trust_bundle'"),
        ("trust_bundle: t\ndatabase: d\naudit_log: a\nrevocation_lists: x.crl\n", "must be a list"),
        ("key: [unclosed\n", "cannot read relay config"),
    ],
)
def test_bad_relay_config_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "relay.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "relay.yaml")


def test_endpoint_transport_checked(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text(
        "device_key: k\ncredential: c\ntrust_bundle: t\nrelay: ws://x\nstate: s\ntransport: tcp\n"
    )
    with pytest.raises(ConfigError, match="transport"):
        load_endpoint_config(tmp_path / "e.yaml")
