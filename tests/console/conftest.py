"""Fixtures of the console's browser tests: the rig (tests/console/rig.py, one per module) and
headless Chromium (Debian's, through Playwright) with a fake microphone playing a known file."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.adapters.gateway_rig import speech_like
from tests.console.rig import ConsoleRig, chromium, open_consoles
from tests.rigs.tools import skip_unavailable

MIC_RATE = 16000
MIC_SECONDS = 3.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ConsoleRig]:
    r = await open_consoles(tmp_path_factory.mktemp("console-rig"))
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture(scope="module")
def mic_pcm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """What the fake microphone plays (in a loop): a speech-like WAV, and its PCM."""
    pcm = speech_like(MIC_RATE, MIC_SECONDS, seed=11)
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(MIC_RATE)
        w.writeframes(pcm)
    return path, pcm


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(mic_pcm: tuple[Path, bytes]) -> AsyncIterator[Any]:
    with skip_unavailable():
        path = chromium()
    from playwright.async_api import async_playwright

    args = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_pcm[0]}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=path, headless=True, args=args)
        try:
            yield b
        finally:
            await b.close()
