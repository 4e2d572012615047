"""Incident channels from the console, in headless Chromium against the real relay: console A
opens a channel under the agreement with B and the RTP gateway of another agency, removes the
gateway, adds it back, and ends the channel; console B sees each step; a request the agreement
does not allow is refused before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.console.i18n import strings
from tests.console.browser import logged_in
from tests.console.rig import RADIO, ConsoleRig

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]
NEW = "incident-4472"
GW = "ca-rcmp/gw-sarnia"
B = "ca-rcmp/dispatch-2"


def new_card(page: Any) -> Any:
    return page.locator(f'section[data-channel="{NEW}"]')


async def test_open_change_and_end_an_incident_channel(rig: ConsoleRig, browser: Any) -> None:
    a, b = await logged_in(browser, rig, 0), await logged_in(browser, rig, 1)
    en = strings("en")
    await a.locator("#incident").wait_for()
    assert await a.locator("#inc-agreement option").all_inner_texts() == ["Great Lakes Shiprider"]
    await a.fill("#inc-name", "Fuel spill, Sarnia")
    await a.fill("#inc-channel", NEW)
    await a.fill("#inc-hours", "2")
    for device, role in ((B, "dispatcher"), (GW, "member")):
        row = a.locator("#inc-members .inc-row", has=a.locator(f'[data-device="{device}"]'))
        await row.locator(".inc-pick").check()
        await row.locator(".inc-role").select_option(role)
    await a.click("#inc-open")
    await a.locator('#inc-status[data-state="done"]').wait_for()
    await new_card(b).wait_for()  # B is in the new channel: it verified epoch 1 itself
    assert "Fuel spill, Sarnia" in await new_card(b).locator(".ch-title").inner_text()
    assert RADIO in await new_card(b).locator(".roster").inner_text()

    remove = new_card(a).get_by_role(
        "button", name=en["incident.remove_label"].format(device=RADIO)
    )
    await remove.click()
    await new_card(b).locator(".ch-meta", has_text="2").wait_for()  # epoch 2
    await new_card(b).locator(".roster", has_text=RADIO).wait_for(state="detached")
    assert RADIO not in await new_card(b).locator(".roster").inner_text()

    await new_card(a).locator(".add-device").select_option(GW)
    await new_card(a).locator(".add-role").select_option("member")
    await new_card(a).locator(".add-btn").click()
    await new_card(b).locator(".roster", has_text=RADIO).wait_for()

    await new_card(a).locator(".end-btn").click()
    await new_card(b).locator(".ch-removed").wait_for(timeout=30_000)  # expired at the relay
    await new_card(a).locator(".ch-removed").wait_for(timeout=30_000)
    assert a.errors == [] and b.errors == []
    await a.context.close()
    await b.context.close()


async def test_refused_before_anything_is_sent(rig: ConsoleRig, browser: Any) -> None:
    a = await logged_in(browser, rig, 0)
    await a.fill("#inc-name", "No members")
    await a.fill("#inc-channel", "incident-empty")
    await a.click("#inc-open")  # nobody picked
    await a.locator("#command-error", has_text="pick at least one member").wait_for()
    await a.fill("#inc-channel", "Bad Id!")
    await a.click("#inc-open")
    await a.locator("#command-error", has_text="a channel id is").wait_for()
    assert "incident-empty" not in rig.consoles[0].endpoint.channels
    await a.context.close()
