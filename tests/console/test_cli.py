"""``crossband console``: its configuration, ``hash-password``, and the real process serving
the console against the real relay process on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bridge.cli.console import load_console_config
from bridge.console.auth import hash_password, verify_password
from bridge.errors import ConfigError
from crypto.keyfile import save_device
from tests.bridge.harness import ROOT, RelayProcess
from tests.world import World, make_world

HASH = hash_password("pw for tests", log_n=10)


def files(tmp: Path, world: World, relay_url: str, console: Any) -> Path:
    d = world.devices["us-cbp/dispatch-1"]
    save_device(tmp / "dispatch.key", d.id, d.keys, None)
    (tmp / "dispatch.cred").write_bytes(d.cred.encode())
    (tmp / "trust.json").write_bytes(world.trust.encode())
    doc = {
        "device_key": "dispatch.key",
        "credential": "dispatch.cred",
        "trust_bundle": "trust.json",
        "relay": relay_url,
        "state": "dispatch.db",
        "console": console,
    }
    path = tmp / "console.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def world() -> World:
    w = make_world(now=int(time.time()))
    w.device("us-cbp", "dispatch-1", ("dispatcher", "member"), alias="Blaine dispatch")
    return w


def test_config_loads_with_defaults(tmp_path: Path, world: World) -> None:
    path = files(
        tmp_path, world, "ws://127.0.0.1:9/ws", {"users": [{"name": "ana", "password_hash": HASH}]}
    )
    cfg, console = load_console_config(str(path))
    assert cfg.settings.credential == tmp_path / "dispatch.cred"
    assert (console.host, console.port, console.session_ttl) == ("127.0.0.1", 8480, 28800.0)
    assert console.password_hashes() == {"ana": HASH}


@pytest.mark.parametrize(
    ("console", "problem"),
    [
        (None, "console: expected a mapping"),
        ({"users": []}, "console.users"),
        ({"users": [{"name": "ana", "password_hash": "plain"}]}, "not a scrypt password hash"),
        (
            {"users": [{"name": "a", "password_hash": HASH}, {"name": "a", "password_hash": HASH}]},
            "same name",
        ),
        (
            {"listen": "0.0.0.0:8480", "users": [{"name": "a", "password_hash": HASH}]},
            "not loopback",
        ),
        ({"listen": "8480", "users": [{"name": "a", "password_hash": HASH}]}, "host:port"),
        ({"users": [{"name": "a", "password_hash": HASH}], "colour": "red"}, "console.colour"),
    ],
)
def test_config_errors_name_the_setting(
    tmp_path: Path, world: World, console: Any, problem: str
) -> None:
    path = files(tmp_path, world, "ws://127.0.0.1:9/ws", console)
    with pytest.raises(ConfigError) as err:
        load_console_config(str(path))
    assert str(err.value).startswith(str(path)) and problem in str(err.value)


def test_config_without_console_section(tmp_path: Path, world: World) -> None:
    path = files(tmp_path, world, "ws://127.0.0.1:9/ws", {})
    doc = yaml.safe_load(path.read_text())
    del doc["console"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="console: missing"):
        load_console_config(str(path))


def test_remote_listen_needs_allow_remote(tmp_path: Path, world: World) -> None:
    c = {
        "listen": "0.0.0.0:8480",
        "allow_remote": True,
        "users": [{"name": "a", "password_hash": HASH}],
    }
    _, console = load_console_config(str(files(tmp_path, world, "ws://127.0.0.1:9/ws", c)))
    assert console.host == "0.0.0.0"


def console_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge.cli.console", *args]


def test_hash_password_from_stdin() -> None:
    out = subprocess.run(
        console_cmd("hash-password", "--stdin"),
        input="a long pass phrase\n",
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert "a long pass phrase" not in out.stdout + out.stderr
    assert verify_password("a long pass phrase", line) and not verify_password("other", line)
    empty = subprocess.run(
        console_cmd("hash-password", "--stdin"),
        input="\n",
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert empty.returncode == 2 and "empty" in empty.stderr


async def test_the_console_process_serves_a_login_and_the_state(
    tmp_path: Path, world: World
) -> None:
    relay = RelayProcess(tmp_path, world)
    relay.start()
    users = [{"name": "ana", "password_hash": HASH}]
    path = files(tmp_path, world, relay.url, {"listen": "127.0.0.1:0", "users": users})
    proc = await asyncio.create_subprocess_exec(
        *console_cmd("--config", str(path)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        m = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        assert m is not None, f"no URL in {line!r}"
        url = m.group(1)
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address (loopback)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=aiohttp.ClientTimeout(10)) as s:
            page = await (await s.get(url + "/login")).text()
            token = re.search(r'name="login_token" value="([^"]+)"', page)
            assert token is not None
            form = {"login_token": token.group(1), "user": "ana", "password": "pw for tests"}
            main = await s.post(url + "/login", data=form)
            text = await main.text()
            assert main.status == 200 and str(main.url) == url + "/"
            csrf = re.search(r'<meta name="csrf" content="([^"]+)">', text)
            assert csrf is not None
            ws = await s.ws_connect(f"{url}/ws?csrf={csrf.group(1)}", headers={"Origin": url})
            deadline = time.monotonic() + 15
            connected = False
            while not connected and time.monotonic() < deadline:
                msg = await ws.receive_json(timeout=deadline - time.monotonic())
                connected = msg.get("t") == "state" and msg["connected"]
            assert connected and msg["device"] == "us-cbp/dispatch-1"
            await ws.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        relay.stop()
