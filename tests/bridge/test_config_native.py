"""endpoint.yaml's xmpp, mumble and cot sections: each through its adapter's own loader.

A wrong setting is one ``ConfigError`` line naming the file and the setting inside the section;
file names in a section are relative to endpoint.yaml (as every other path in it); a password
file that others can read is refused; a good file builds one binding per mapped channel, with the
adapter of that system (nothing is started or connected here).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from adapters.cot.adapter import CotAdapter
from adapters.mumble.adapter import MumbleAdapter
from adapters.sip.adapter import SipAdapter
from adapters.xmpp.adapter import XmppAdapter
from bridge.cli.endpoint import load_endpoint_config
from bridge.cli.native import native_bindings, resolve_paths
from bridge.errors import ConfigError
from tests.bridge.test_config_endpoint import BASE, write

XMPP = {
    "server": "127.0.0.1:5222",
    "jid": "gw@example",
    "password_file": "secrets/xmpp.pass",  # relative to endpoint.yaml
    "tls": "none",
    "rooms": [{"room": "incident@conference.example", "nick": "us-gw", "channel": "c1"}],
}
MUMBLE = {
    "host": "127.0.0.1",
    "fingerprint": "ab" * 32,
    "cert_file": "mumble.crt",
    "key_file": "mumble.key",
    "channels": [{"mumble": "Dispatch", "channel": "c2", "username": "cb-gw"}],
}
SIP = {"listen": "127.0.0.1:0", "lines": [{"extension": "7001", "channel": "c4"}]}
COT = {"channels": [{"channel": "c3", "transport": "tcp", "host": "127.0.0.1", "port": 8087}]}


def secrets(tmp: Path, mode: int = 0o600) -> None:
    (tmp / "secrets").mkdir(exist_ok=True)
    pw = tmp / "secrets" / "xmpp.pass"
    pw.write_text("not-a-real-password\n")
    os.chmod(pw, mode)


def test_every_section_becomes_bindings_with_paths_beside_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets(tmp_path)
    monkeypatch.chdir("/")  # relative names must not depend on where crossband was started
    cfg = load_endpoint_config(
        write(tmp_path, {**BASE, "xmpp": XMPP, "mumble": MUMBLE, "cot": COT, "sip": SIP})
    )
    assert cfg.native.xmpp is not None
    assert cfg.native.xmpp.password_file == str(tmp_path / "secrets" / "xmpp.pass")
    assert cfg.native.mumble[0].server.cert_file == str(tmp_path / "mumble.crt")
    bindings = native_bindings(cfg.native, cfg.source)
    kinds = {b.channel: type(b.adapter) for b in bindings}
    assert kinds == {"c1": XmppAdapter, "c2": MumbleAdapter, "c3": CotAdapter, "c4": SipAdapter}


BAD: list[tuple[dict[str, Any], str]] = [
    ({"xmpp": {**XMPP, "server": "nohost"}}, "xmpp.server"),
    ({"xmpp": {**XMPP, "tls": "maybe"}}, "xmpp.tls"),
    ({"xmpp": {**XMPP, "rooms": [{"room": "r@c.example", "channel": "c1"}]}}, "xmpp.rooms[0]"),
    ({"xmpp": {**XMPP, "pasword_file": "x"}}, "xmpp.pasword_file"),
    ({"mumble": {**MUMBLE, "host": ""}}, "mumble.host"),
    ({"mumble": {**MUMBLE, "channels": []}}, "mumble.channels"),
    ({"cot": {"channels": [{**COT["channels"][0], "port": "x"}]}}, "cot.channels[0].port"),
    ({"cot": {"channels": [{**COT["channels"][0], "port": 0}]}}, "cot.channels[0].port"),
    ({"cot": {"channels": [{"transport": "udp"}]}}, "cot.channels[0].channel"),
    ({"cot": {"channels": [{**COT["channels"][0], "wire": "json"}]}}, "cot.channels[0].wire"),
    ({"cot": {"chanels": []}}, "cot.chanels"),
    ({"cot": [1]}, "cot"),
    ({"sip": {**SIP, "lines": []}}, "sip.lines"),
    ({"sip": {**SIP, "lstn": 1}}, "sip.lstn"),
]


@pytest.mark.parametrize(("extra", "setting"), BAD, ids=[s for _, s in BAD])
def test_wrong_native_setting_refused_in_one_line(
    tmp_path: Path, extra: dict[str, Any], setting: str
) -> None:
    secrets(tmp_path)
    path = write(tmp_path, {**BASE, **extra})
    with pytest.raises(ConfigError) as info:
        native_bindings(load_endpoint_config(path).native, path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: {setting}"), message


def test_a_password_file_others_can_read_is_refused_without_its_content(tmp_path: Path) -> None:
    secrets(tmp_path, 0o644)
    path = write(tmp_path, {**BASE, "xmpp": XMPP})
    with pytest.raises(ConfigError) as info:
        native_bindings(load_endpoint_config(path).native, path)
    assert str(info.value).startswith(f"{path}: xmpp.password_file")
    assert "not-a-real-password" not in str(info.value)


def test_only_file_settings_are_resolved() -> None:
    base = Path("/etc/crossband")
    doc = {"server": "h:1", "ca_file": "ca.pem", "x": [{"key_file": "/abs.key", "nick": "n"}]}
    assert resolve_paths(doc, base) == {
        "server": "h:1",
        "ca_file": "/etc/crossband/ca.pem",
        "x": [{"key_file": "/abs.key", "nick": "n"}],
    }
