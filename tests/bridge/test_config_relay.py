"""relay.yaml: typed settings that refuse unknown keys and wrong types in one line (fault 8),
the relay's new limits mapped into RelayConfig, and the event loop named in the start line."""

from __future__ import annotations

import dataclasses
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli.main import main
from bridge.cli.relay import loop_runner
from bridge.config import RelayLimits, RelaySettings
from bridge.errors import ConfigError
from bridge.relay.config import build_server, load_config, relay_config
from bridge.relay.state import RelayConfig
from crypto.keyfile import save_relay_key
from crypto.keys import SigningKey
from tests.bridge.harness import RelayProcess
from tests.world import make_world

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
BASE = {"trust_bundle": "trust.json", "database": "relay.db", "audit_log": "audit.log"}


def write(tmp: Path, doc: Any, name: str = "relay.yaml") -> Path:
    path = tmp / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# (extra settings, the dotted setting the one-line error must name)
BAD = [
    ({"port": "abc"}, "port"),
    ({"max_talk_time": "long"}, "max_talk_time"),
    ({"limits": 5}, "limits"),
    ({"limits": {"control_rate": -1}}, "limits.control_rate"),
    ({"limits": {"control_rate": 0}}, "limits.control_rate"),
    ({"limits": {"media_rate": ".inf"}}, "limits.media_rate"),
    ({"limits": {"control_burst": 0.5}}, "limits.control_burst"),
    ({"limits": {"contrl_rate": 10}}, "limits.contrl_rate"),
    ({"limits": {"max_connections": 0}}, "limits.max_connections"),
    ({"limits": {"max_connections": "1000"}}, "limits.max_connections"),
    ({"limits": {"max_unauthenticated": 5000}}, "limits.max_unauthenticated"),
    ({"limits": {"auth_timeout": 0}}, "limits.auth_timeout"),
    ({"limits": {"send_queue_limit": 10}}, "limits.send_queue_limit"),
    ({"limits": {"send_queue_limit": 1.5e6}}, "limits.send_queue_limit"),
    ({"audit_fail_closed": "yes please"}, "audit_fail_closed"),
    ({"port": 65536}, "port"),
    ({"port": -1}, "port"),
    ({"port": True}, "port"),
    ({"udp_port": True}, "udp_port"),
    ({"udp_port": "8444"}, "udp_port"),
    ({"message_ttl": -5}, "message_ttl"),
    ({"relay_id": ""}, "relay_id"),
    ({"relay_id": 7}, "relay_id"),
    ({"revocation_lists": "us-cbp.crl"}, "revocation_lists"),
    ({"revocation_lists": ["a.crl", 5]}, "revocation_lists[1]"),
    ({"tls_key": "tls/relay.key"}, "tls_key"),
    ({"passphrase_env": "RELAY PASS"}, "passphrase_env"),
    ({"event_loop": "trio"}, "event_loop"),
    ({"trust_bundle": None}, "trust_bundle"),
    ({"databse": "x.db"}, "databse"),
    # fault 8 / item 4: nothing lets an operator keep a channel past its agreement
    ({"channel_max_lifetime": 31536000}, "channel_max_lifetime"),
    ({"allow_expired_agreements": True}, "allow_expired_agreements"),
    ({"limits": {"channel_expiry": 86400}}, "limits.channel_expiry"),
]


@pytest.mark.parametrize(("extra", "setting"), BAD, ids=[s for _, s in BAD])
def test_wrong_setting_refused_in_one_line(tmp_path: Path, extra: Any, setting: str) -> None:
    doc = yaml.safe_dump({**BASE, **extra}).replace("'.inf'", ".inf")
    path = write(tmp_path, doc)
    message = refused(path)
    assert "\n" not in message
    assert message.startswith(f"{path}: {setting}: "), message


def test_missing_required_setting_named(tmp_path: Path) -> None:
    path = write(tmp_path, {"database": "x.db", "audit_log": "a.log"})
    assert refused(path) == f"{path}: trust_bundle: required setting is missing"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- a list\n", "expected a mapping of settings, got a list"),
        ("", "the file is empty"),
        ("key: [unclosed\n", "not valid YAML at line 2"),
        ("when: 2026-13-45\n", "not valid YAML"),
        ("\xff\xfe", "not UTF-8"),
        ("port: 1\nlimits: {media_rate: 3}\nport: 2\n", "the key 'port' is given twice"),
    ],
)
def test_unreadable_file_refused_in_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "relay.yaml"
    path.write_bytes(text.encode("latin-1"))
    message = refused(path)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


@pytest.mark.parametrize(
    "extra",
    [{"port": "abc"}, {"max_talk_time": "long"}, {"limits": 5}, {"limits": {"control_rate": -1}}],
)
def test_cli_prints_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: Any
) -> None:
    (tmp_path / "trust.json").write_bytes(make_world().trust.encode())  # a real one: the
    path = write(tmp_path, {**BASE, **extra})  # setting, not a missing file, must be what fails
    assert main(["relay", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"crossband: error: {path}: "), err
    assert "Traceback" not in err


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {**BASE, "revocation_lists": ["a.crl", "/abs/b.crl"]}))
    assert cfg.trust_bundle == tmp_path / "trust.json"
    assert cfg.revocation_lists == [tmp_path / "a.crl", Path("/abs/b.crl")]


def test_empty_sections_mean_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "trust_bundle: t\ndatabase: d\naudit_log: a\nlimits:\n"))
    assert cfg.limits == RelayLimits() and cfg.revocation_lists == []


def test_every_setting_reaches_relay_config(tmp_path: Path) -> None:
    limits = {
        "control_rate": 11,
        "control_burst": 22,
        "media_rate": 33.5,
        "media_burst": 44,
        "max_connections": 555,
        "max_unauthenticated": 66,
        "auth_timeout": 7.5,
        "send_queue_limit": 262144,
    }
    doc = {
        **BASE,
        "relay_id": "r-1",
        "max_talk_time": 30,
        "emergency_max_talk_time": 120,
        "message_ttl": 3600,
        "audit_fail_closed": True,
        "limits": limits,
    }
    got = relay_config(load_config(write(tmp_path, doc)))
    want = {
        "relay_id": "r-1",
        "max_talk_time": 30.0,
        "emergency_max_talk_time": 120.0,
        "message_ttl": 3600.0,
        "audit_fail_closed": True,
        **limits,
    }
    assert {k: getattr(got, k) for k in want} == want
    assert isinstance(got.max_connections, int) and isinstance(got.control_rate, float)


def test_defaults_match_the_relay_core() -> None:
    """A file that says nothing gives the core its own defaults (one source of truth)."""
    got = relay_config(RelaySettings.model_validate({**BASE}, context={"base": Path("/")}))
    core = RelayConfig()
    for f in dataclasses.fields(RelayConfig):
        if f.name not in ("udp_port", "signing_key", "relay_id"):
            assert getattr(got, f.name) == getattr(core, f.name), f.name


def _documented_settings() -> list[str]:
    top = [f for f in RelaySettings.model_fields if f != "limits"]
    return top + [f"limits.{f}" for f in RelayLimits.model_fields]


def test_example_and_guide_document_every_setting() -> None:
    example = (EXAMPLES / "relay.yaml").read_text()
    guide = (ROOT / "docs" / "operators.md").read_text()
    relay_part = guide[guide.index("### relay.yaml") : guide.index("### endpoint.yaml")]
    for setting in _documented_settings():
        leaf = setting.split(".")[-1]
        assert re.search(rf"^\s*(# )?{leaf}:", example, re.MULTILINE), setting
        assert f"| `{setting}` |" in relay_part, setting
    cfg = load_config(EXAMPLES / "relay.yaml")
    assert cfg.trust_bundle == EXAMPLES / "trust.json" and cfg.udp_port == 8444
    assert cfg.relay_key == EXAMPLES / "relay.key" and len(cfg.revocation_lists) == 3


def test_files_named_by_the_config_are_checked_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE})
    message = str(pytest.raises(ConfigError, build_server, load_config(path), path).value)
    assert message.startswith(f"{path}: trust_bundle: {tmp_path / 'trust.json'}: ")
    world = make_world()
    (tmp_path / "trust.json").write_bytes(world.trust.encode())
    save_relay_key(tmp_path / "relay.key", "someone-else", SigningKey.generate(), None)
    path = write(tmp_path, {**BASE, "relay_id": "r-1", "relay_key": "relay.key"})
    message = str(pytest.raises(ConfigError, build_server, load_config(path), path).value)
    assert message.startswith(f"{path}: relay_key: ") and "'someone-else'" in message
    path = write(tmp_path, {**BASE, "database": "no/such/dir/relay.db"})
    message = str(pytest.raises(ConfigError, build_server, load_config(path), path).value)
    assert message.startswith(f"{path}: database: cannot open ")


def test_uvloop_required_but_missing_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    path = write(tmp_path, {**BASE, "event_loop": "uvloop"})
    with pytest.raises(ConfigError, match=r"event_loop: uvloop is not installed"):
        loop_runner(load_config(path), path)
    _, name = loop_runner(load_config(write(tmp_path, {**BASE})), path)
    assert name == "asyncio"  # auto falls back


@pytest.mark.parametrize("choice", ["auto", "asyncio"])
def test_start_line_names_the_event_loop(tmp_path: Path, choice: str) -> None:
    try:
        import uvloop  # noqa: F401

        auto = "uvloop"
    except ImportError:
        auto = "asyncio"
    relay = RelayProcess(tmp_path, make_world(), event_loop=choice)
    relay.start()
    try:
        lines = [x for x in relay.log.read_text().splitlines() if "listening on" in x]
    finally:
        relay.stop()
    want = auto if choice == "auto" else "asyncio"
    assert len(lines) == 1 and lines[0].endswith(f"loop={want}"), lines


def test_a_passphrase_typed_into_passphrase_env_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "relay_key": "r.key", "passphrase_env": "correct horse!"})
    message = refused(path)
    assert message.startswith(f"{path}: passphrase_env: must be the NAME of an environment")
    assert "horse" not in message


def test_alias_bomb_refused_quickly(tmp_path: Path) -> None:
    """Nine levels of nine aliases are 387 million values: refused without walking them."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert "more than 100000 values" in refused(path)


def test_a_port_in_use_is_one_line_naming_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "trust.json").write_bytes(make_world().trust.encode())
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write(tmp_path, {**BASE, "host": "127.0.0.1", "port": port, "udp_port": False})
        assert main(["relay", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"crossband: error: {path}: host, port, udp_port: cannot listen on ")
    assert err.count("\n") == 1
