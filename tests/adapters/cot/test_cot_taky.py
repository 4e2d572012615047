"""The CoT adapter through a real TAK server (``taky`` 0.10, plain TCP on 127.0.0.1), with a
``pytak`` client as the other TAK user: positions, chat and emergencies both ways."""

from __future__ import annotations

import asyncio
import configparser
import time
from collections.abc import Iterator
from pathlib import Path

import pytak
import pytest
import takproto

from adapters.base import EmergencyAlert, EmergencyState, Position, Text
from adapters.cot.adapter import CotAdapter, CotConfig
from tests.adapters.cot.taky_rig import read_event, taky_server
from tests.adapters.cot.test_cot_driver import WAIT, Seen, geochat_xml


@pytest.fixture
def taky(tmp_path: Path) -> Iterator[int]:
    with taky_server(tmp_path) as port:
        yield port


async def test_positions_chat_and_emergency_both_ways_through_taky(taky: int) -> None:
    seen = Seen()
    adapter = CotAdapter(
        CotConfig(
            transport="tcp",
            host="127.0.0.1",
            port=taky,
            wire="xml",
            agency="USBP",
            group="Cyan",
            backoff_initial=0.05,
        )
    )
    await adapter.start(seen)
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
        got = await seen.next()
        assert isinstance(got, Position) and (got.uid, got.callsign) == ("ANDROID-9", "RCMP 4")
        writer.write(geochat_xml("vessel inbound"))
        assert await seen.next() == Text(source="cot:RCMP 4", body="vessel inbound")
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
        assert await seen.next() == EmergencyAlert("ANDROID-9-9-1-1", True)
        await writer.drain()

        # the channel side: a position, a chat message and an emergency come out at the client
        now = time.time()
        adapter.show_position(
            Position(
                uid="usbp-boat-7",
                callsign="Boat 7",
                lat=48.9876543,
                lon=-123.1234567,
                time=now,
                stale=now + 120,
            ),
            "usbp/gw-1",
        )
        msg = takproto.functions.xml2message(
            bytearray(await asyncio.wait_for(read_event(reader, "a-f-G-U-C"), WAIT))
        )
        # taky re-serialises the point with 6 decimals: exactly the precision required
        assert abs(msg.cotEvent.lat - 48.9876543) <= 5e-7
        assert abs(msg.cotEvent.lon + 123.1234567) <= 5e-7
        assert msg.cotEvent.detail.contact.callsign == "usbp:Boat 7"
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
