"""TAK positions and emergencies across the bridge, end to end, with real peers only.

A US TAK server (``taky`` A) and a Canadian one (``taky`` B) on 127.0.0.1, each with a ``pytak``
client as its TAK user; US gateway ``us-cbp/gw-blaine`` has a :class:`CotAdapter` on A, Canadian
gateway ``ca-rcmp/gw-sarnia`` one on B, both endpoints of one channel through the real relay
process (:mod:`tests.adapters.gateway_rig`). A position report sent by the US user arrives at
the Canadian user as a CoT event with the same uid, lat and lon (to the 6 decimals taky writes),
tagged with the signing agency; one from the Canadian user reaches the US user likewise; a US
911 alert and its cancel arrive as the Canadian side's signed emergency; hostile data
messages signed by a member are refused with a code and deliver nothing.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import takproto

from adapters.cot.adapter import CotAdapter, CotConfig
from bridge.gateway import Binding, Gateway
from tests.adapters.cot.taky_rig import pli, read_event, tak_client, taky_server
from tests.adapters.gateway_rig import CH, close_rig, open_rig

pytestmark = pytest.mark.slow
WAIT = 10.0  # seconds for any one event to cross; every wait fails the test when it runs out
US_DEVICE, CA_DEVICE = "us-cbp/gw-blaine", "ca-rcmp/gw-sarnia"


def cot(port: int, agency: str) -> CotAdapter:
    return CotAdapter(
        CotConfig(
            transport="tcp",
            host="127.0.0.1",
            port=port,
            agency=agency,
            group="Cyan",
            backoff_initial=0.05,
        )
    )


def alert(uid: str, callsign: str, cot_type: str) -> bytes:
    return pli(uid, callsign, 48.99, -123.05, cot_type=cot_type)


async def test_positions_and_emergencies_cross_between_two_tak_servers(tmp_path: Path) -> None:
    with taky_server(tmp_path / "taky-us") as us_port, taky_server(tmp_path / "taky-ca") as ca_port:
        rig = await open_rig(tmp_path)
        us_cot, ca_cot = cot(us_port, "USBP"), cot(ca_port, "RCMP")
        us_gw, ca_gw = Gateway(rig.a, [Binding(CH, us_cot)]), Gateway(rig.b, [Binding(CH, ca_cot)])
        writers: list[asyncio.StreamWriter] = []
        try:
            await us_gw.start()
            await ca_gw.start()
            us_reader, us_user = await tak_client(us_port)
            ca_reader, ca_user = await tak_client(ca_port)
            writers += [us_user, ca_user]
            for adapter in (us_cot, ca_cot):
                await asyncio.wait_for(adapter.connected.wait(), WAIT)

            # Canada → US first: the Canadian user announces itself with its position
            ca_user.write(pli("ANDROID-CA-4", "RCMP 4", 49.1234567, -122.7654321))
            got = await asyncio.wait_for(read_event(us_reader, "a-f-G-U-C", "ANDROID-CA-4"), WAIT)
            ev = takproto.functions.xml2message(bytearray(got)).cotEvent
            assert (ev.lat, ev.lon) == (49.123457, -122.765432)  # taky writes 6 decimals
            assert ev.detail.contact.callsign == "ca-rcmp:RCMP 4"

            # US → Canada, timed from the write at the US user to the read at the Canadian one
            lat, lon = 48.9876543, -123.1234567
            sent_at = time.monotonic()
            us_user.write(pli("ANDROID-US-7", "USBP 7", lat, lon))
            got = await asyncio.wait_for(read_event(ca_reader, "a-f-G-U-C", "ANDROID-US-7"), WAIT)
            crossed_ms = (time.monotonic() - sent_at) * 1000
            ev = takproto.functions.xml2message(bytearray(got)).cotEvent
            assert ev.uid == "ANDROID-US-7"
            assert (ev.lat, ev.lon) == (float(f"{lat:.6f}"), float(f"{lon:.6f}"))
            assert ev.detail.contact.callsign == "us-cbp:USBP 7"  # the signer's agency
            assert ev.detail.group.name == "Cyan"
            assert f"Crossband position signed by {US_DEVICE}".encode() in got
            print(f"PLI US TAK user → Canadian TAK user: {crossed_ms:.1f} ms")

            # a US 911 alert and its cancel: the Canadian side's signed emergency, both ways
            us_user.write(alert("ANDROID-US-7-9-1-1", "USBP 7-Alert", "b-a-o-tbl"))
            got = await asyncio.wait_for(read_event(ca_reader, "b-a-o-tbl"), WAIT)
            assert b"911 Alert" in got
            assert f"Crossband emergency signed by {US_DEVICE}".encode() in got
            assert f'callsign="{US_DEVICE}-Alert"'.encode() in got
            us_user.write(alert("ANDROID-US-7-9-1-1", "USBP 7-Alert", "b-a-o-can"))
            got = await asyncio.wait_for(read_event(ca_reader, "b-a-o-can"), WAIT)
            assert b'cancel="true"' in got
            assert f"Crossband emergency signed by {US_DEVICE}".encode() in got

            # a member signs a hostile data message: refused with its code at the US gateway,
            # nothing reaches the US TAK user, and the next good report still does
            us_stats, ca_stats = us_gw.channels[CH].stats, ca_gw.channels[CH].stats
            await rig.b.send_text(CH, b'{"v":1,"t":"pos","lat":1e999}', kind="data")
            await rig.b.send_text(CH, b"[" * 5000, kind="data")
            ca_user.write(pli("ANDROID-CA-5", "RCMP 5", 49.5, -122.5))
            got = await asyncio.wait_for(read_event(us_reader, "a-f-G-U-C", "ANDROID-CA-5"), WAIT)
            assert us_stats.positions_refused == {"malformed": 1, "too-large": 1}

            assert (us_stats.alerts_sent, us_stats.alert_errors) == (2, 0)
            assert ca_stats.positions_shown == 1 and us_stats.positions_shown == 2
            assert not ca_stats.positions_refused
            assert not us_cot.refused and not ca_cot.refused
        finally:
            for w in writers:
                w.close()
            await us_gw.stop()
            await ca_gw.stop()
            await close_rig(rig)
