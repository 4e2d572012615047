"""The CoT adapter through a real TAK server (``taky`` 0.10, plain TCP on 127.0.0.1), with a
``pytak`` client as the other TAK user: positions, chat and emergencies both ways."""

from __future__ import annotations

import asyncio
import configparser
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytak
import pytest
import takproto

from adapters.base import EmergencyState, Text
from adapters.cot.adapter import CotAdapter, CotConfig
from adapters.cot.mapping import Position
from tests.adapters.cot.test_cot_driver import WAIT, Seen, geochat_xml

TAKY = Path(sys.executable).with_name("taky")  # a test dependency (pyproject): never skipped


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def taky(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    conf = configparser.ConfigParser()
    conf.read_dict(
        {
            "taky": {
                "hostname": "taky.local",
                "node_id": "TAKY",
                "bind_ip": "127.0.0.1",
                "public_ip": "127.0.0.1",
                "root_dir": str(tmp_path),
            },
            "cot_server": {"port": str(port)},
            "dp_server": {"upload_path": str(tmp_path / "dp")},
            "ssl": {"enabled": "false"},
        }
    )
    with (tmp_path / "taky.conf").open("w") as f:
        conf.write(f)
    proc = subprocess.Popen(
        [str(TAKY), "-c", str(tmp_path / "taky.conf")],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + WAIT
        while True:
            assert proc.poll() is None, "taky exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "taky did not listen in time"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(WAIT)


async def read_event(reader: asyncio.StreamReader, want: str) -> bytes:
    """The next XML event of type ``want`` that taky relays to the pytak client."""
    while True:
        data = await reader.readuntil(b"</event>")
        if f'type="{want}"'.encode() in data:
            return data[data.index(b"<event") :]


async def test_positions_chat_and_emergency_both_ways_through_taky(taky: int) -> None:
    positions, texts, alarms = Seen(), Seen(), Seen()
    adapter = CotAdapter(
        CotConfig(
            transport="tcp",
            host="127.0.0.1",
            port=taky,
            wire="xml",
            agency="USBP",
            group="Cyan",
            backoff_initial=0.05,
        ),
        on_position=positions,
        on_emergency=alarms,
    )
    await adapter.start(texts)
    conf = configparser.ConfigParser()
    conf["x"] = {"COT_URL": f"tcp://127.0.0.1:{taky}"}
    reader, writer = await pytak.protocol_factory(conf["x"])
    try:
        await asyncio.wait_for(adapter.connected.wait(), WAIT)
        # the TAK user announces itself and reports a position: the adapter hears it
        writer.write(
            pytak.gen_cot(
                lat=49.0012,
                lon=-123.0345,
                uid="ANDROID-9",
                stale=120,
                cot_type="a-f-G-U-C",
                callsign="RCMP 4",
            )
        )
        got = await positions.next()
        assert isinstance(got, Position) and (got.uid, got.callsign) == ("ANDROID-9", "RCMP 4")
        writer.write(geochat_xml("vessel inbound"))
        assert await texts.next() == Text(source="RCMP 4", body="vessel inbound")
        writer.write(
            pytak.gen_cot(
                lat=49.0,
                lon=-123.0,
                uid="ANDROID-9-9-1-1",
                stale=120,
                cot_type="b-a-o-tbl",
                callsign="RCMP 4-Alert",
            )
        )
        assert await alarms.next() == EmergencyState(True, "ANDROID-9-9-1-1")
        await writer.drain()

        # the channel side: a position, a chat message and an emergency come out at the client
        now = time.time()
        adapter.send_position(
            Position(
                source="dev",
                uid="usbp-boat-7",
                callsign="Boat 7",
                lat=48.9876543,
                lon=-123.1234567,
                time=now,
                stale=now + 120,
                agency="USBP",
            )
        )
        msg = takproto.functions.xml2message(
            bytearray(await asyncio.wait_for(read_event(reader, "a-f-G-U-C"), WAIT))
        )
        # taky re-serialises the point with 6 decimals: exactly the precision required
        assert abs(msg.cotEvent.lat - 48.9876543) <= 5e-7
        assert abs(msg.cotEvent.lon + 123.1234567) <= 5e-7
        assert msg.cotEvent.detail.contact.callsign == "USBP:Boat 7"
        assert msg.cotEvent.detail.group.name == "Cyan"
        adapter.post("hold at the buoy", "Alice")
        chat = await asyncio.wait_for(read_event(reader, "b-t-f"), WAIT)
        assert b"hold at the buoy" in chat and b'senderCallsign="USBP:Alice"' in chat
        adapter.emergency(EmergencyState(True, "alice-dev"))
        assert b"911 Alert" in await asyncio.wait_for(read_event(reader, "b-a-o-tbl"), WAIT)
        adapter.emergency(EmergencyState(False, "alice-dev"))
        assert b'cancel="true"' in await asyncio.wait_for(read_event(reader, "b-a-o-can"), WAIT)
        assert not adapter.refused
    finally:
        writer.close()
        await adapter.stop()
