"""The XMPP adapter against a real Debian prosody on loopback, with a plain slixmpp "officer"
(a client nobody here wrote the protocol side of) in the same MUC room."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import slixmpp

from adapters.base import AdapterEvent, EmergencyState, Text
from adapters.errors import AdapterConfigError
from adapters.xmpp.adapter import XmppAdapter, read_password, xmpp_adapters
from adapters.xmpp.driver import Link, room_message
from adapters.xmpp.mapping import load_xmpp_config
from tests.rigs.prosody import Occupant, Prosody, prosody  # noqa: F401  (the fixture)
from tests.rigs.tools import skip_unavailable

NICK = "us-cbp-gw"
DEADLINE = 10.0


def make_adapter(
    server: Prosody,
    tmp: Path,
    password: str | None = None,
    join_timeout: float = 10.0,
    port: int | None = None,
    **options: float,
) -> XmppAdapter:
    pw = tmp / "xmpp.pass"
    pw.write_text((password or server.passwords["gw"]) + "\n")
    pw.chmod(0o600)
    cfg = load_xmpp_config(
        {
            "server": f"127.0.0.1:{port or server.port}",
            "jid": server.jid("gw"),
            "password_file": str(pw),
            "rooms": [{"room": server.room("incident"), "nick": NICK, "channel": "shiprider-7"}],
        }
    )
    ((channel, built),) = xmpp_adapters(cfg, plaintext=True)  # what the CLI calls
    assert channel == "shiprider-7" and built.mapping == cfg.rooms[0]
    return XmppAdapter(
        cfg,
        cfg.rooms[0],
        read_password(str(pw)),
        plaintext=True,
        backoff_max=0.5,
        join_timeout=join_timeout,
        **options,  # type: ignore[arg-type]
    )


class Inbox:
    def __init__(self) -> None:
        self.q: asyncio.Queue[AdapterEvent] = asyncio.Queue()

    def __call__(self, event: AdapterEvent) -> None:
        self.q.put_nowait(event)

    async def text(self, timeout: float = DEADLINE) -> Text:
        event = await asyncio.wait_for(self.q.get(), timeout)
        assert isinstance(event, Text)
        return event


@pytest.fixture
async def officer(prosody: Prosody) -> AsyncIterator[Occupant]:  # noqa: F811
    o = Occupant(prosody, "officer", prosody.room("incident"))
    await o.join()
    yield o
    await o.close()


async def until_from(o: Occupant, nick: str, timeout: float = DEADLINE) -> str:
    deadline = time.monotonic() + timeout
    while True:
        who, body, _ = await o.next(max(0.01, deadline - time.monotonic()))
        if who == nick:
            return body


async def test_text_both_ways_and_no_echo(prosody, officer, tmp_path):  # noqa: F811
    adapter = make_adapter(prosody, tmp_path)
    inbox = Inbox()
    await adapter.start(inbox)
    try:
        assert adapter.connected and adapter.driver.joins == 1
        assert adapter.driver.mechanism.startswith("SCRAM-")  # no password on the wire
        officer.say("hello bridge")
        t = await inbox.text()
        assert (t.source, t.body) == ("xmpp:officer", "hello bridge")

        adapter.post("reply from the channel", "us-cbp/d1")
        adapter.talk_ended("mx-semar/d2", True)
        adapter.emergency(EmergencyState(True, "mx-semar/d2", verified=False))
        adapter.emergency(EmergencyState(True, "mx-semar/d2", verified=False))  # told twice
        adapter.emergency(EmergencyState(True, "mx-semar/d2", verified=True))
        got = [await until_from(officer, NICK) for _ in range(4)]
        assert got == [
            "[us-cbp/d1] reply from the channel",
            "mx-semar/d2 talked, verified",
            "EMERGENCY raised by mx-semar/d2 (relay's claim, unverified)",
            "EMERGENCY raised by mx-semar/d2 (signed by a member)",
        ]
        officer.say("sentinel")  # our own four posts came back to us first: none is an event
        assert (await inbox.text()).body == "sentinel"
        assert inbox.q.empty()
    finally:
        await adapter.stop()


async def test_kicked_from_the_room_rejoins(prosody, officer, tmp_path):  # noqa: F811
    adapter = make_adapter(prosody, tmp_path)  # the officer made the room: it moderates
    inbox = Inbox()
    await adapter.start(inbox)
    try:
        await officer.client.plugin["xep_0045"].set_role(prosody.room("incident"), NICK, "none")
        await asyncio.wait_for(_until(lambda: adapter.driver.joins >= 2), DEADLINE)
        officer.say("still there?")
        assert (await inbox.text()).body == "still there?"
    finally:
        await adapter.stop()


async def test_join_history_is_not_replayed(prosody, officer, tmp_path):  # noqa: F811
    for i in range(3):
        officer.say(f"old-{i}")
    for i in range(3):
        assert await until_from(officer, "officer") == f"old-{i}"
    late = Occupant(prosody, "gw", prosody.room("incident"), nick="late")  # asks for history
    await late.join(history=10)
    seen = [await late.next() for _ in range(3)]
    assert seen == [("officer", f"old-{i}", True) for i in range(3)]  # the room has history
    await late.close()

    adapter = make_adapter(prosody, tmp_path)
    inbox = Inbox()
    await adapter.start(inbox)
    try:
        officer.say("new")
        assert (await inbox.text()).body == "new"
        assert inbox.q.empty()
    finally:
        await adapter.stop()


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
async def test_reconnects_after_restart_and_delivers_once(prosody, tmp_path, kill):  # noqa: F811
    room = prosody.room("incident")
    adapter = make_adapter(prosody, tmp_path)
    inbox = Inbox()
    await adapter.start(inbox)
    officer = Occupant(prosody, "officer", room)
    await officer.join()
    try:
        officer.say("before")
        assert (await inbox.text()).body == "before"

        prosody.stop(kill=kill)
        await asyncio.wait_for(_until(lambda: not adapter.connected), DEADLINE)
        await officer.close()
        for i in range(3):
            adapter.post(f"down-{i}", "us-cbp/d1")
        assert len(adapter.driver.outbox) == 3

        t0 = time.monotonic()
        prosody.start()
        await asyncio.wait_for(adapter.driver.joined.wait(), DEADLINE)
        rejoin = time.monotonic() - t0
        assert adapter.driver.joins == 2 and len(adapter.driver.outbox) == 0

        officer = Occupant(prosody, "officer", room)
        await officer.join(history=50)  # what was drained before it joined is in the history
        adapter.post("after", "us-cbp/d1")
        bodies = []
        while "[us-cbp/d1] after" not in bodies:
            bodies.append(await until_from(officer, NICK))
        assert bodies == [f"[us-cbp/d1] down-{i}" for i in range(3)] + ["[us-cbp/d1] after"]

        officer.say("back")  # traffic resumes, and nothing from before was replayed to us
        assert (await inbox.text()).body == "back"
        assert inbox.q.empty()
        print(f"rejoined {rejoin * 1000:.0f} ms after prosody was back")
    finally:
        await officer.close()
        await adapter.stop()


async def test_server_down_at_start_then_up(prosody, tmp_path):  # noqa: F811
    prosody.stop()
    adapter = make_adapter(prosody, tmp_path, join_timeout=1.0)
    inbox = Inbox()
    t0 = time.monotonic()
    await adapter.start(inbox)  # returns, still trying: the endpoint runs without chat
    assert time.monotonic() - t0 < 3.0 and not adapter.connected
    officer = None
    try:
        adapter.post("early", "us-cbp/d1")
        await asyncio.wait_for(_until(lambda: adapter.driver.attempts >= 6), DEADLINE)
        senders = [t for t in asyncio.all_tasks() if "run_filters" in repr(t.get_coro())]
        assert len(senders) <= 1  # a failed attempt leaves no client running

        prosody.start()
        await asyncio.wait_for(adapter.driver.joined.wait(), DEADLINE)
        officer = Occupant(prosody, "officer", prosody.room("incident"))
        await officer.join(history=50)
        adapter.post("later", "us-cbp/d1")
        assert await until_from(officer, NICK) == "[us-cbp/d1] early"
        assert await until_from(officer, NICK) == "[us-cbp/d1] later"
    finally:
        if officer is not None:
            await officer.close()
        await adapter.stop()


async def test_silent_link_loss_is_found_by_keepalive(prosody, officer, tmp_path):  # noqa: F811
    """The link goes dark without a FIN or RST (bytes are held, as TCP would retransmit them):
    only the keepalive ping finds it; the adapter reconnects once the link is back."""
    from tests.rigs.tcp_proxy import TcpProxy

    async with TcpProxy(("127.0.0.1", prosody.port), on_outage="hold") as proxy:
        adapter = make_adapter(
            prosody,
            tmp_path,
            port=proxy.address[1],
            join_timeout=2.0,
            keepalive=0.3,
            ping_timeout=0.5,
        )
        inbox = Inbox()
        await adapter.start(inbox)
        try:
            officer.say("lit")
            assert (await inbox.text()).body == "lit"
            proxy.link.set_down()
            t0 = time.monotonic()
            await asyncio.wait_for(_until(lambda: not adapter.connected), DEADLINE)
            found = time.monotonic() - t0
            assert found < 0.3 + 0.5 + 1.0  # one keepalive period + the ping timeout, and slack
            adapter.post("while dark", "us-cbp/d1")
            proxy.link.set_up()
            await asyncio.wait_for(_until(lambda: adapter.driver.joins >= 2), DEADLINE)
            adapter.post("after", "us-cbp/d1")
            bodies = [await until_from(officer, NICK), await until_from(officer, NICK)]
            assert bodies == ["[us-cbp/d1] while dark", "[us-cbp/d1] after"]
            officer.say("back")
            assert (await inbox.text()).body == "back"
            assert inbox.q.empty()
            print(f"dead link found in {found * 1000:.0f} ms")
        finally:
            await adapter.stop()


async def _until(cond, step: float = 0.02) -> None:
    while not cond():
        await asyncio.sleep(step)


async def test_wrong_password_is_a_clear_error(prosody, tmp_path):  # noqa: F811
    secret = "wrong-Secret-123"
    adapter = make_adapter(prosody, tmp_path, password=secret)
    t0 = time.monotonic()
    with pytest.raises(AdapterConfigError) as e:
        await adapter.start(Inbox())
    assert time.monotonic() - t0 < DEADLINE
    assert e.value.setting == "xmpp.password_file"
    assert "refused the password" in str(e.value) and secret not in str(e.value)
    assert not adapter.connected
    await adapter.stop()


async def test_no_password_without_tls(prosody, tmp_path):  # noqa: F811
    cfg = make_adapter(prosody, tmp_path).config  # this prosody offers no STARTTLS
    adapter = XmppAdapter(cfg, cfg.rooms[0], prosody.passwords["gw"], join_timeout=5.0)
    with pytest.raises(AdapterConfigError) as e:
        await adapter.start(Inbox())
    assert e.value.setting == "xmpp.server" and "TLS" in str(e.value)
    assert adapter.driver.mechanism == ""


async def test_starttls_verified_against_the_configured_ca(tmp_path):
    with skip_unavailable():
        server = Prosody(tmp_path, tls=True)  # requires encryption, offers STARTTLS
    server.start()
    try:
        cfg = make_adapter(server, tmp_path).config
        adapter = XmppAdapter(cfg, cfg.rooms[0], server.passwords["gw"], ca_file=server.ca_file)
        await adapter.start(Inbox())
        assert adapter.connected and adapter.driver.mechanism
        await adapter.stop()

        untrusted = XmppAdapter(cfg, cfg.rooms[0], server.passwords["gw"])  # system CAs only
        with pytest.raises(AdapterConfigError) as e:
            await untrusted.start(Inbox())
        assert e.value.setting == "xmpp.server" and "certificate" in str(e.value)
    finally:
        server.stop()


async def test_nick_taken_is_a_clear_error(prosody, tmp_path):  # noqa: F811
    squatter = Occupant(prosody, "officer", prosody.room("incident"), nick=NICK)
    await squatter.join()
    try:
        adapter = make_adapter(prosody, tmp_path)
        with pytest.raises(AdapterConfigError) as e:
            await adapter.start(Inbox())
        assert e.value.setting == "xmpp.rooms[0].nick" and NICK in str(e.value)
    finally:
        await squatter.close()


def test_delayed_stanza_is_history():
    room = "incident@rooms.example"
    xml = (
        f"<message xmlns='jabber:client' from='{room}/alice' type='groupchat'><body>hi</body>"
        f"<delay xmlns='urn:xmpp:delay' from='{room}' stamp='2026-01-01T00:00:00Z'/></message>"
    )
    msg = slixmpp.Message(xml=ET.fromstring(xml))
    rm = room_message(msg, room)
    assert rm is not None and rm.nick == "alice" and rm.body == "hi" and rm.delayed
    assert room_message(msg, "other@rooms.example") is None


def test_password_file_must_be_private(tmp_path):
    p = tmp_path / "pw"
    p.write_text("s3cret\n")
    p.chmod(0o644)
    with pytest.raises(AdapterConfigError, match="0600") as e:
        read_password(str(p))
    assert "s3cret" not in str(e.value)
    p.chmod(0o600)
    assert read_password(str(p)) == "s3cret"
    with pytest.raises(AdapterConfigError, match="cannot open"):
        read_password(str(tmp_path / "missing"))


def test_plaintext_only_on_loopback():
    with pytest.raises(AdapterConfigError, match="loopback") as e:
        Link("chat.example", 5222, "gw@example", "pw", plaintext=True)
    assert e.value.setting == "xmpp.server"


async def test_room_to_far_endpoint_and_back(prosody, officer, tmp_path):  # noqa: F811
    """The officer's post arrives signed (by the bridge's device) and decrypted at the other
    agency's endpoint across the real relay; its reply comes back into the room."""
    from bridge.endpoint import events as ev
    from bridge.gateway import Binding, Gateway
    from tests.adapters.gateway_rig import CH, close_rig, open_rig
    from tests.bridge.harness import next_event

    rig = await open_rig(tmp_path)
    gateway = Gateway(rig.a, [Binding(CH, make_adapter(prosody, tmp_path))])
    try:
        await gateway.start()
        officer.say("vessel sighted 41.9N 82.5W")
        msg = await next_event(rig.b, ev.Message, timeout=DEADLINE, channel=CH)
        assert msg.sender == rig.a.device and msg.kind == "text"
        assert msg.body.decode() == f"xmpp:officer via {rig.a.device}: vessel sighted 41.9N 82.5W"

        await rig.b.send_text(CH, "copy, intercepting", timeout=DEADLINE)
        assert await until_from(officer, NICK) == f"[{rig.b.device}] copy, intercepting"
    finally:
        await gateway.stop()
        await close_rig(rig)
