"""A real TAK server (``taky`` 0.10, plain TCP on 127.0.0.1) and a ``pytak`` client, for the
CoT tests and ``bench/cot_positions.py``.

``taky`` is a test dependency (pyproject), installed beside this interpreter: it is never
skipped. :func:`pli` builds a position report with ``pytak`` and then writes the point back at
full precision, because ``pytak``'s point helper truncates to 4 decimals.
"""

from __future__ import annotations

import asyncio
import configparser
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytak

TAKY = Path(sys.executable).with_name("taky")
START = 10.0  # seconds for taky to listen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def taky_server(root: Path) -> Iterator[int]:
    """A taky server with its files under ``root``; yields its TCP port; stopped on exit."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = configparser.ConfigParser()
    conf.read_dict(
        {
            "taky": {
                "hostname": "taky.local",
                "node_id": "TAKY",
                "bind_ip": "127.0.0.1",
                "public_ip": "127.0.0.1",
                "root_dir": str(root),
            },
            "cot_server": {"port": str(port)},
            "dp_server": {"upload_path": str(root / "dp")},
            "ssl": {"enabled": "false"},
        }
    )
    with (root / "taky.conf").open("w") as f:
        conf.write(f)
    proc = subprocess.Popen(
        [str(TAKY), "-c", str(root / "taky.conf")],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START
        while True:
            if proc.poll() is not None:
                raise RuntimeError("taky exited")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("taky did not listen in time") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(START)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(START)


async def tak_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A ``pytak`` TCP client of the taky server at ``port``."""
    conf = configparser.ConfigParser()
    conf["x"] = {"COT_URL": f"tcp://127.0.0.1:{port}"}
    reader, writer = await pytak.protocol_factory(conf["x"])
    return reader, writer


def pli(uid: str, callsign: str, lat: float, lon: float, cot_type: str = "a-f-G-U-C") -> bytes:
    """A position report from ``pytak``, its point at full precision (repr of the floats)."""
    event = pytak.gen_cot_xml(
        lat=lat, lon=lon, uid=uid, stale=120, cot_type=cot_type, callsign=callsign
    )
    assert event is not None
    point = event.find("point")
    assert point is not None
    point.set("lat", repr(lat))
    point.set("lon", repr(lon))
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(event)


async def read_event(reader: asyncio.StreamReader, want: str, uid: str | None = None) -> bytes:
    """The next XML event of type ``want`` (and ``uid``) that taky relays to a client."""
    while True:
        data = await reader.readuntil(b"</event>")
        data = data[data.index(b"<event") :]
        if f'type="{want}"'.encode() in data and (uid is None or f'uid="{uid}"'.encode() in data):
            return data
