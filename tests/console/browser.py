"""Page helpers of the console's browser tests (Playwright, async)."""

from __future__ import annotations

from typing import Any

from tests.console.rig import CH, PASSWORDS, ConsoleRig

WAIT = 15_000  # ms: every wait in the page has this deadline and fails after it


async def new_page(browser: Any, locale: str = "en-US") -> Any:
    context = await browser.new_context(
        locale=locale, viewport={"width": 1280, "height": 900}, permissions=["microphone"]
    )
    page = await context.new_page()
    page.set_default_timeout(WAIT)
    errors: list[str] = []

    def on_console(m: Any) -> None:  # a refused login's 401 is expected; script errors not
        if m.type == "error" and not m.text.startswith("Failed to load resource"):
            errors.append(m.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return page


async def log_in(page: Any, url: str, user: str, password: str) -> None:
    await page.goto(url + "/")
    assert page.url.endswith("/login")  # nothing before login: sent to the login page
    await page.fill("#user", user)
    await page.fill("#password", password)
    await page.click("#login-submit")


async def logged_in(browser: Any, rig: ConsoleRig, i: int, locale: str = "en-US") -> Any:
    c = rig.consoles[i]
    page = await new_page(browser, locale)
    await log_in(page, c.url, c.user, PASSWORDS[c.user])
    await page.wait_for_selector(f'section[data-channel="{CH}"]')
    await page.wait_for_selector("#status.connected")
    return page


def card(page: Any) -> Any:
    return page.locator(f'section[data-channel="{CH}"]')
