"""endpoint.yaml: typed settings (fault 8), the relay pin (fault 1) and the RTP mappings.

Unknown keys and wrong types are refused with one line naming the file and the setting; a
``relay_key`` that is not a relay's public key is refused at load; the ``rtp`` section goes
through the RTP adapter's own loader and its errors come back as one line naming file and entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli.endpoint import load_endpoint_config
from bridge.errors import ConfigError
from crypto.encoding import b64e
from crypto.keys import SigningKey

BASE = {
    "device_key": "dev.key",
    "credential": "dev.cred",
    "trust_bundle": "trust.json",
    "relay": "ws://127.0.0.1:8443/ws",
    "state": "state.db",
}
RTP_IN = {"port": 5004, "payload": "pcmu"}


def write(tmp: Path, doc: Any) -> Path:
    path = tmp / "endpoint.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


BAD = [
    ({"transport": "tcp"}, "transport"),
    ({"relay": "http://relay:8443/ws"}, "relay"),
    ({"relay": "ws://relay:port/ws"}, "relay"),
    ({"relay": 8443}, "relay"),
    ({"relay_key": "garbage"}, "relay_key"),
    ({"relay_key": "relay.key"}, "relay_key"),  # the relay's private key file, not its pin
    ({"relay_key": "A" * 42 + "B"}, "relay_key"),  # 43 characters, non-canonical last one
    ({"relay_key": 12345}, "relay_key"),
    ({"tls_ca": "ca.pem"}, "tls_ca"),  # with a ws:// relay there is no TLS to trust it for
    ({"tls_ca": 5, "relay": "wss://relay/ws"}, "tls_ca"),
    ({"relay_kye": "x"}, "relay_kye"),
    ({"revocation_lists": [None]}, "revocation_lists[0]"),
    ({"passphrase_env": "$PASS"}, "passphrase_env"),
    ({"state": ""}, "state"),
    ({"rtp": 5}, "rtp"),
    ({"rtp": {"rate": 16000}}, "rtp.channels"),
    ({"rtp": {"channels": [{"channel": "c1", "input": {"payload": "pcmu"}}]}}, "rtp.channels[0]"),
    ({"rtp": {"channels": [{"channel": "c1", "input": {**RTP_IN, "prot": 1}}]}}, "rtp.channels"),
    ({"rtp": {"rate": "fast", "channels": []}}, "rtp.rate"),
]


@pytest.mark.parametrize(("extra", "setting"), BAD, ids=[s for _, s in BAD])
def test_wrong_setting_refused_in_one_line(tmp_path: Path, extra: Any, setting: str) -> None:
    path = write(tmp_path, {**BASE, **extra})
    with pytest.raises(ConfigError) as info:
        load_endpoint_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {setting}"), message


def test_relay_key_is_loaded_as_the_relays_public_key(tmp_path: Path) -> None:
    key = SigningKey.generate()
    cfg = load_endpoint_config(write(tmp_path, {**BASE, "relay_key": b64e(key.public.raw)}))
    assert cfg.settings.relay_key == key.public


def test_rtp_mappings_come_from_the_adapter(tmp_path: Path) -> None:
    rtp = {"channels": [{"channel": "c1", "input": RTP_IN}, {"channel": "c2", "input": RTP_IN}]}
    path = write(tmp_path, {**BASE, "rtp": rtp})
    with pytest.raises(ConfigError, match=r"^.*endpoint\.yaml: rtp\.channels: .*c1.*c2"):
        load_endpoint_config(path)  # one port for two channels: the adapter's own check
    rtp["channels"][1]["input"] = {**RTP_IN, "port": 5008}
    cfg = load_endpoint_config(write(tmp_path, {**BASE, "rtp": rtp}))
    assert [m.channel for m in cfg.rtp] == ["c1", "c2"]
