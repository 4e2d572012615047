"""The dispatch console in headless Chromium (Debian's, driven by Playwright) against a real
relay process and two console endpoints on loopback (tests/console/rig.py).

Screenshots of the main view in each language are saved to a temporary folder this module
prints (``CROSSBAND_CONSOLE_SCREENSHOTS=<dir>`` saves them there instead).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bridge.console.i18n import LANGS, strings
from tests.console.browser import card, log_in, logged_in, new_page
from tests.console.rig import CH, NAME, PASSWORDS, ConsoleRig

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]


async def test_wrong_password_refused_then_login(rig: ConsoleRig, browser: Any) -> None:
    c = rig.consoles[0]
    page = await new_page(browser)
    await log_in(page, c.url, c.user, "not the password")
    await page.wait_for_selector("#login-error")
    assert await page.inner_text("#login-error") == strings("en")["login.failed"]
    assert page.url.endswith("/login")
    await page.fill("#user", c.user)
    await page.fill("#password", PASSWORDS[c.user])
    await page.click("#login-submit")
    await page.wait_for_selector(f'section[data-channel="{CH}"]')
    title = await card(page).locator(".ch-title").inner_text()
    assert NAME in title and CH in title
    roster = await card(page).locator(".roster tbody").inner_text()
    assert "Blaine dispatch" in roster and "Surrey dispatch" in roster and "ca-rcmp" in roster
    assert page.errors == []
    await page.context.close()


async def test_message_from_a_arrives_at_b(rig: ConsoleRig, browser: Any) -> None:
    a, b = await logged_in(browser, rig, 0), await logged_in(browser, rig, 1)
    text = "Suspect vessel northbound, 2 nm west of Point Roberts"
    await card(a).locator(".msg-input").fill(text)
    await card(a).locator(".msg-send").click()
    got = card(b).locator(".messages li.msg.received", has_text=text)
    await got.wait_for()
    assert "Blaine dispatch (us-cbp)" in await got.inner_text()
    await card(a).locator(".messages li.msg.delivered", has_text=text).wait_for()
    assert a.errors == [] and b.errors == []
    await a.context.close()
    await b.context.close()


async def test_emergency_raised_on_a_shows_verified_on_b(rig: ConsoleRig, browser: Any) -> None:
    a, b = await logged_in(browser, rig, 0), await logged_in(browser, rig, 1)
    await card(a).locator(".em-raise").click()
    await card(b).locator('.emergency[data-state="verified"]').wait_for()
    shown = await card(b).locator(".emergency").inner_text()
    en = strings("en")
    assert "Blaine dispatch (us-cbp)" in shown and en["emergency.verified"] in shown
    await b.locator("#banner").wait_for(state="visible")
    assert NAME in await b.inner_text("#banner")
    await card(b).locator(".em-clear").click()  # B is a dispatcher: its clear counts
    await card(a).locator('.emergency[data-state="none"]').wait_for()
    await card(b).locator('.emergency[data-state="none"]').wait_for()
    await b.locator("#banner").wait_for(state="hidden")
    await a.context.close()
    await b.context.close()


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("CROSSBAND_CONSOLE_SCREENSHOTS")
    d = Path(chosen) if chosen else tmp_path_factory.mktemp("console-screenshots")
    d.mkdir(parents=True, exist_ok=True)
    return d


async def test_every_language_fully_translated_with_screenshots(
    rig: ConsoleRig, browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    out = screenshot_dir(tmp_path_factory)
    page = await logged_in(browser, rig, 0)
    await card(page).locator(".msg-input").fill("")
    for lang in LANGS:
        s = strings(lang)
        await page.select_option("#lang", lang)
        await page.wait_for_function(f"document.documentElement.lang === '{lang}'")
        assert await page.inner_text("h1") == s["app.title"]
        assert await page.inner_text("#status") == s["status.connected"]
        assert await card(page).locator(".ptt").inner_text() == s["ptt.button"]
        assert await card(page).locator(".talker").inner_text() == s["talker.none"]
        body = await page.inner_text("body")
        assert "⟦" not in body, f"{lang}: untranslated key shown: {body[body.index('⟦') :][:60]}"
        for el in await page.locator("[data-i18n]").all():
            key = await el.get_attribute("data-i18n")
            if await el.is_visible():
                assert (await el.inner_text()).strip() == s[key].strip(), (lang, key)
        await page.screenshot(path=str(out / f"console-main-{lang}.png"), full_page=True)
    assert not [e for e in page.errors if "missing translation" in e]
    print(f"\nconsole screenshots: {out}")
    assert sorted(p.name for p in out.glob("console-main-*.png")) == [
        f"console-main-{lang}.png" for lang in sorted(LANGS)
    ]
    for lang in LANGS:  # the login page too, chosen by ?lang=
        login = await new_page(browser)
        await login.goto(rig.consoles[0].url + f"/login?lang={lang}")
        assert await login.inner_text("h1") == strings(lang)["login.title"]
        await login.screenshot(path=str(out / f"console-login-{lang}.png"))
        await login.context.close()
    await page.select_option("#lang", "en")
    await page.context.close()


async def focus_by_tab(page: Any, selector: str, limit: int = 40) -> None:
    """Press Tab until ``selector`` has the focus (at most ``limit`` times)."""
    for _ in range(limit):
        if await page.evaluate(f"document.activeElement.matches({selector!r})"):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{selector} not reached with {limit} Tabs")


async def test_keyboard_only_login_message_and_push_to_talk(rig: ConsoleRig, browser: Any) -> None:
    b = await logged_in(browser, rig, 1)
    c = rig.consoles[0]
    a = await new_page(browser)
    await a.goto(c.url + "/")
    await focus_by_tab(a, "#user")
    await a.keyboard.type(c.user)
    await a.keyboard.press("Tab")
    await a.keyboard.type(PASSWORDS[c.user])
    await a.keyboard.press("Enter")
    await card(a).wait_for()
    await a.wait_for_selector("#status.connected")
    await focus_by_tab(a, f'section[data-channel="{CH}"] .msg-input')
    await a.keyboard.type("Keyboard only: copy")
    await a.keyboard.press("Enter")
    await card(b).locator(".messages li.msg.received", has_text="Keyboard only: copy").wait_for()
    # push-to-talk on the space bar, on the selected channel (the radio button has focus)
    await focus_by_tab(a, f'section[data-channel="{CH}"] .ch-select')
    await a.keyboard.down(" ")
    await card(a).locator('.floor[data-state="granted"]').wait_for()
    talker = card(b).locator('.talker:not([data-state="none"])')
    await talker.wait_for()
    assert "Blaine dispatch (us-cbp)" in await talker.inner_text()
    await a.keyboard.up(" ")
    await card(a).locator('.floor[data-state="idle"]').wait_for()
    await card(b).locator('.talker[data-state="none"]').wait_for()
    # every control reachable with Tab has a name a screen reader reads
    unnamed = await a.evaluate(
        """() => [...document.querySelectorAll('button, input:not([type=hidden]), select')]
            .filter(e => !e.closest('template') && e.offsetParent !== null)
            .filter(e => !(e.labels && e.labels.length) && !e.textContent.trim()
                         && !e.getAttribute('aria-label'))
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []
    assert a.errors == [] and b.errors == []
    await a.context.close()
    await b.context.close()


async def test_floor_busy_shows_queue_position_then_grant(rig: ConsoleRig, browser: Any) -> None:
    a, b = await logged_in(browser, rig, 0), await logged_in(browser, rig, 1)
    await card(a).locator(".ptt").hover()
    await a.mouse.down()
    await card(a).locator('.floor[data-state="granted"]').wait_for()
    await card(b).locator(".talker", has_text="Blaine dispatch (us-cbp)").wait_for()
    await card(b).locator(".ptt").hover()
    await b.mouse.down()
    queued = card(b).locator('.floor[data-state="queued"]')
    await queued.wait_for()
    assert await queued.inner_text() == strings("en")["floor.queued"].format(position=1)
    await a.mouse.up()  # A lets go: the waiting B gets the floor
    await card(b).locator('.floor[data-state="granted"]').wait_for()
    await card(a).locator(".talker", has_text="Surrey dispatch (ca-rcmp)").wait_for()
    await b.mouse.up()
    await card(b).locator('.floor[data-state="idle"]').wait_for()
    await card(a).locator('.talker[data-state="none"]').wait_for()
    assert a.errors == [] and b.errors == []
    await a.context.close()
    await b.context.close()
