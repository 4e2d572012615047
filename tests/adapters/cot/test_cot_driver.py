"""The asyncio CoT driver against peers nobody here wrote: ``pytak`` sends to it over UDP,
``takproto`` parses what it sends, and a TCP server in the test plays the TAK server
(it frames with ``takproto``), drops the connection and sees the adapter come back."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytak
import pytest
import takproto

from adapters.base import EmergencyAlert, EmergencyState, Position, Text
from adapters.cot.adapter import CotAdapter, CotConfig

WAIT = 5.0  # seconds; every wait below fails the test when it runs out


class Seen:
    def __init__(self) -> None:
        self.events: asyncio.Queue[object] = asyncio.Queue()

    def __call__(self, item: object) -> None:
        self.events.put_nowait(item)

    async def next(self) -> object:
        return await asyncio.wait_for(self.events.get(), WAIT)


class UdpInbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait(data)


async def read_stream_frame(reader: asyncio.StreamReader) -> bytes:
    """One ``0xbf <varint> <TakMessage>`` frame, read the way a TAK server would."""
    head = await reader.readexactly(1)
    assert head == b"\xbf"
    size, shift, varint = 0, 0, b""
    while True:
        byte = await reader.readexactly(1)
        varint += byte
        size |= (byte[0] & 0x7F) << shift
        shift += 7
        if not byte[0] & 0x80:
            return head + varint + await reader.readexactly(size)


def geochat_xml(text: str) -> bytes:  # as ATAK sends it
    now = pytak.cot_time()
    stale = pytak.cot_time(3600)
    return (
        f'<?xml version="1.0"?><event version="2.0" uid="GeoChat.ANDROID-9.All Chat Rooms.'
        f'm1" type="b-t-f" how="h-g-i-g-o" time="{now}" start="{now}" stale="{stale}">'
        f'<point lat="49.0" lon="-123.0" hae="0" ce="9999999" le="9999999"/><detail>'
        f'<__chat parent="RootContactGroup" groupOwner="false" chatroom="All Chat Rooms" '
        f'id="All Chat Rooms" senderCallsign="RCMP 4"><chatgrp uid0="ANDROID-9" '
        f'uid1="All Chat Rooms" id="All Chat Rooms"/></__chat><link uid="ANDROID-9" '
        f'type="a-f-G-U-C" relation="p-p"/><remarks source="BAO.F.ATAK.ANDROID-9" '
        f'to="All Chat Rooms" time="{now}">{text}</remarks></detail></event>'
    ).encode()


@pytest.fixture
async def inbox() -> AsyncIterator[tuple[UdpInbox, int]]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(UdpInbox, local_addr=("127.0.0.1", 0))
    yield proto, transport.get_extra_info("sockname")[1]
    transport.close()


async def test_udp_with_pytak_and_takproto(inbox: tuple[UdpInbox, int]) -> None:
    box, box_port = inbox
    seen = Seen()
    adapter = CotAdapter(
        CotConfig(
            transport="udp",
            host="127.0.0.1",
            port=box_port,
            bind_host="127.0.0.1",
            bind_port=0,
            agency="USBP",
        )
    )
    assert adapter.yields_positions and adapter.takes_positions
    await adapter.start(seen)
    try:
        _, writer = await pytak.create_udp_client(
            urlparse(f"udp+wo://127.0.0.1:{adapter.udp_port}")
        )
        await writer.send(
            pytak.gen_cot(
                lat=45.1234,
                lon=-75.7654,
                uid="us-1",
                stale=60,
                cot_type="a-f-G-U-C",
                callsign="US 1",
            )
        )
        got = await seen.next()
        assert isinstance(got, Position)
        assert (got.uid, got.callsign, got.lat, got.lon) == ("us-1", "US 1", 45.1234, -75.7654)
        await writer.send(b"<!DOCTYPE x [<!ENTITY a 'b'>]><event>&a;</event>")
        await writer.send(geochat_xml("convoy at gate 3"))
        assert await seen.next() == Text(source="cot:RCMP 4", body="convoy at gate 3")
        assert adapter.refused["dtd"] == 1
        now = time.time()
        await writer.send(
            pytak.gen_cot(
                lat=45.0,
                lon=-75.0,
                uid="ANDROID-9-9-1-1",
                stale=60,
                cot_type="b-a-o-tbl",
                callsign="RCMP 4-Alert",
            )
        )
        assert await seen.next() == EmergencyAlert("ANDROID-9-9-1-1", True)

        adapter.post("hold position", "Alice")
        msg = takproto.functions.xml2message(bytearray(await asyncio.wait_for(box.got.get(), WAIT)))
        assert msg.cotEvent.type == "b-t-f" and "hold position" in msg.cotEvent.detail.xmlDetail
        assert 'senderCallsign="USBP:Alice"' in msg.cotEvent.detail.xmlDetail
        adapter.show_position(
            Position(
                uid="usbp-7",
                callsign="Boat 7",
                lat=48.9876543,
                lon=-123.1234567,
                time=now,
                stale=now + 60,
            ),
            "us-cbp/gw-blaine",
        )
        msg = takproto.functions.xml2message(bytearray(await asyncio.wait_for(box.got.get(), WAIT)))
        assert (msg.cotEvent.lat, msg.cotEvent.lon) == (48.9876543, -123.1234567)
        assert msg.cotEvent.detail.contact.callsign == "us-cbp:Boat 7"
        assert "signed by us-cbp/gw-blaine" in msg.cotEvent.detail.xmlDetail
        adapter.emergency(EmergencyState(False, "alice-dev"))
        msg = takproto.functions.xml2message(bytearray(await asyncio.wait_for(box.got.get(), WAIT)))
        assert msg.cotEvent.type == "b-a-o-can" and 'cancel="true"' in msg.cotEvent.detail.xmlDetail
        writer.close()
    finally:
        await adapter.stop()
    assert seen.events.empty()


async def test_tcp_to_a_tak_server_in_protobuf_with_reconnect() -> None:
    conns: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.put_nowait((r, w))

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    positions = Seen()
    adapter = CotAdapter(
        CotConfig(
            transport="tcp",
            host="127.0.0.1",
            port=port,
            wire="proto",
            agency="CBSA",
            backoff_initial=0.05,
            backoff_max=0.2,
        )
    )
    await adapter.start(positions)
    try:
        reader, writer = await asyncio.wait_for(conns.get(), WAIT)
        event = pytak.gen_cot(
            lat=49.5, lon=-97.25, uid="ca-2", stale=60, cot_type="a-f-S", callsign="CCGS 2"
        )
        frame = takproto.xml2proto(event, takproto.TAKProtoVer.STREAM)
        writer.write(b"\xbf\x03abc" + bytes(frame[:5]))  # a bad frame, then a split one
        await writer.drain()
        writer.write(bytes(frame[5:]) + bytes(frame))
        got = await positions.next()
        assert isinstance(got, Position) and (got.uid, got.lat, got.lon) == ("ca-2", 49.5, -97.25)
        assert isinstance(await positions.next(), Position)
        assert adapter.refused["frame"] == 1
        # a PLI whose uid Position refuses (over 256 characters): refused, the stream goes on
        long_uid = pytak.gen_cot(lat=1.0, lon=2.0, uid="u" * 300, stale=60, cot_type="a-f-G")
        writer.write(long_uid + pytak.gen_cot(lat=1.0, lon=2.0, uid="ca-4", stale=60))
        got = await positions.next()
        assert isinstance(got, Position) and got.uid == "ca-4"
        assert adapter.refused["field"] == 1 and adapter.attempts == 1

        await asyncio.wait_for(adapter.connected.wait(), WAIT)
        adapter.post("copy", "Bob")
        frame_out = await asyncio.wait_for(read_stream_frame(reader), WAIT)
        msg = takproto.parse_proto(bytearray(frame_out))
        assert msg.cotEvent.type == "b-t-f" and "copy" in msg.cotEvent.detail.xmlDetail

        writer.write(b"garbage")  # a stream out of sync: the adapter drops it, connects again
        _, writer2 = await asyncio.wait_for(conns.get(), WAIT)
        again = pytak.gen_cot(lat=1.0, lon=2.0, uid="ca-3", stale=60, cot_type="a-f-G")
        writer2.write(bytes(takproto.xml2proto(again, takproto.TAKProtoVer.STREAM)))
        got = await positions.next()
        assert isinstance(got, Position) and got.uid == "ca-3"
        assert adapter.refused["sync"] == 1
        writer2.close()
        writer.close()
    finally:
        await adapter.stop()
        server.close()
        await server.wait_closed()


async def test_tcp_backoff_is_bounded_while_no_server_listens() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    adapter = CotAdapter(
        CotConfig(
            transport="tcp", host="127.0.0.1", port=port, backoff_initial=0.05, backoff_max=0.1
        )
    )
    await adapter.start(lambda e: None)
    try:
        adapter.post("nobody hears this", "Bob")
        assert adapter.dropped == 1
        deadline = time.monotonic() + WAIT
        while adapter.attempts < 3:  # several refused connects; then a server appears
            assert time.monotonic() < deadline, "the adapter stopped trying to connect"
            await asyncio.sleep(0.01)
        conns: asyncio.Queue[object] = asyncio.Queue()
        server = await asyncio.start_server(lambda r, w: conns.put_nowait(w), "127.0.0.1", port)
        w = await asyncio.wait_for(conns.get(), 1.0)  # within the 0.1 s backoff bound, with slack
        w.close()  # type: ignore[attr-defined]
        server.close()
        await server.wait_closed()
    finally:
        await adapter.stop()


async def test_multicast_mesh_between_two_adapters_filters_own_echo() -> None:
    port = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port.bind(("127.0.0.1", 0))
    mesh_port = port.getsockname()[1]
    port.close()

    def mesh(agency: str, seen: Seen) -> CotAdapter:
        return CotAdapter(
            CotConfig(
                transport="udp",
                host="239.2.3.1",
                port=mesh_port,
                bind_host="127.0.0.1",
                wire="proto",
                agency=agency,
            )
        )

    us_seen, ca_seen = Seen(), Seen()
    us, ca = mesh("USBP", us_seen), mesh("CBSA", ca_seen)
    try:
        await us.start(us_seen)
        await ca.start(ca_seen)
    except OSError as exc:  # a host without multicast on loopback
        await us.stop()
        pytest.skip(f"no multicast on loopback: {exc}")
    try:
        now = time.time()
        us.show_position(
            Position(
                uid="usbp-1",
                callsign="Car 1",
                lat=48.1234567,
                lon=-122.7654321,
                time=now,
                stale=now + 60,
            ),
            "us-cbp/gw-1",
        )
        got = await ca_seen.next()
        assert isinstance(got, Position)
        assert (got.uid, got.callsign, got.lat) == ("usbp-1", "us-cbp:Car 1", 48.1234567)
        ca.emergency(EmergencyState(True, "ca-dev"))
        assert await us_seen.next() == EmergencyAlert(ca.device_uid, True)
        ca.post("roger", "Bob")
        assert await us_seen.next() == Text(source="cot:CBSA:Bob", body="roger")
        assert us_seen.events.empty() and ca_seen.events.empty()  # own echoes were dropped
    finally:
        await us.stop()
        await ca.stop()
