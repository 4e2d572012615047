"""Voice through the console in headless Chromium, against a real relay and endpoints:

- an RTP gateway's talker appears on a console with its alias and turns verified, its burst
  is listed with a verified seal, and its audio reaches that browser (correlation ≥ 0.8 with
  what the radio sent) but not a console that muted the channel;
- push-to-talk from Chromium's fake microphone (a known speech-like file, looped) goes
  getUserMedia → AudioWorklet → WebSocket → the console's gateway path → the relay → the RTP
  gateway of another agency, whose output must match the file (correlation ≥ 0.8).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from tests.adapters.gateway_rig import (
    bursts_of,
    decode_packets,
    pcm_array,
    run_sender,
    wait_process,
)
from tests.console.browser import card, logged_in
from tests.console.conftest import MIC_RATE
from tests.console.rig import CH, RADIO, ConsoleRig

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(240)]
WINDOW = 0.3  # seconds of output per correlation window


async def test_radio_talker_verified_heard_on_b_not_on_muted_a(
    rig: ConsoleRig, browser: object, mic_pcm: tuple[Path, bytes]
) -> None:
    a, b = await logged_in(browser, rig, 0), await logged_in(browser, rig, 1)
    await card(a).locator(".mute").check()  # A mutes the channel; B listens
    await b.evaluate(
        """() => { window.seen = []; window.crossbandRecord = true;
          const el = document.querySelector('section .talker');
          new MutationObserver(() => window.seen.push([el.dataset.state, el.textContent]))
            .observe(el, {attributes: true, childList: true, characterData: true, subtree: true});
        }"""
    )
    await a.evaluate("() => { window.crossbandRecord = true; }")
    raw = mic_pcm[0].with_suffix(".s16")
    raw.write_bytes(mic_pcm[1])
    proc = run_sender(rig.radio_input, "l16", raw, rate=MIC_RATE, pt=97)
    try:
        await card(b).locator('.talker[data-state="verified"]').wait_for()
        shown = await card(b).locator(".talker").inner_text()
        assert f"{RADIO} (ca-rcmp)" in shown and "verified" in shown
        await wait_process(proc, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    seal = card(b).locator(".bursts li.ok", has_text=RADIO)
    await seal.wait_for()
    seen = [s for s, _ in await b.evaluate("window.seen")]
    first = next(s for s in seen if s != "none")
    assert first in ("unverified", "verified") and "forgery" not in seen
    await card(b).locator('.talker[data-state="none"]').wait_for()
    heard = np.array(await b.evaluate(f"window.crossbandHeard[{CH!r}] || []"), dtype=np.float64)
    assert len(heard) >= 2.5 * MIC_RATE, f"B heard {len(heard) / MIC_RATE:.2f} s"
    corr = window_correlations(pcm_array(mic_pcm[1]), heard, MIC_RATE)
    median = sorted(corr)[len(corr) // 2]
    print(f"\nRTP radio -> browser: {len(corr)} windows, median correlation {median:.3f}")
    assert len(corr) >= 5 and median >= 0.8, f"correlations {[round(c, 2) for c in corr]}"
    assert await a.evaluate(f"(window.crossbandHeard[{CH!r}] || []).length") == 0  # muted
    await a.context.close()
    await b.context.close()


def best_correlation(ref: np.ndarray, seg: np.ndarray) -> float:
    """The highest normalised correlation of ``seg`` with any stretch of ``ref`` as long."""
    n = len(seg)
    size = 1 << int(np.ceil(np.log2(len(ref) + n)))
    num = np.fft.irfft(np.fft.rfft(ref, size) * np.conj(np.fft.rfft(seg, size)), size)
    num = num[: len(ref) - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(ref**2)])
    local = energy[n:] - energy[: len(ref) - n + 1]
    denom = np.sqrt(np.maximum(local, 1e-9) * float(np.dot(seg, seg)))
    return float(np.max(num / denom))


def window_correlations(ref: np.ndarray, out: np.ndarray, rate: int) -> list[float]:
    """Per WINDOW of ``out`` (skipping silence), its best correlation with the looped
    reference (the fake microphone plays the file over and over)."""
    looped = np.tile(ref, 3)
    n = int(WINDOW * rate)
    corr = []
    for i in range(0, len(out) - n + 1, n):
        seg = out[i : i + n]
        if np.sqrt(np.mean(seg**2)) < 300:  # a syllable pause or the tail
            continue
        corr.append(best_correlation(looped, seg))
    return corr


async def test_push_to_talk_from_the_fake_microphone_reaches_the_other_agencys_radio(
    rig: ConsoleRig, browser: object, mic_pcm: tuple[Path, bytes]
) -> None:
    assert rig.collector is not None
    a = await logged_in(browser, rig, 0)
    await card(a).locator('.talker[data-state="none"]').wait_for()
    rig.collector.packets.clear()
    ptt = card(a).locator(".ptt")
    await ptt.hover()
    await a.mouse.down()
    await card(a).locator('.floor[data-state="granted"]').wait_for()
    deadline = time.monotonic() + 20
    while len(rig.collector.packets) < 150:  # 3 s of voice out of the RTP gateway
        assert time.monotonic() < deadline, f"{len(rig.collector.packets)} RTP packets out"
        await asyncio.sleep(0.05)
    await a.mouse.up()
    await rig.collector.wait_quiet(0.6, timeout=15)
    await card(a).locator('.floor[data-state="idle"]').wait_for()
    bursts = bursts_of(rig.collector.packets)
    assert len(bursts) == 1, f"{len(bursts)} RTP bursts"
    out = pcm_array(b"".join(decode_packets([p for _, p in bursts[0]], "l16")))
    ref = pcm_array(mic_pcm[1])
    noise = np.random.default_rng(5).standard_normal(int(WINDOW * MIC_RATE)) * 3000
    assert best_correlation(np.tile(ref, 3), noise) < 0.3  # the measure can fail
    corr = window_correlations(ref, out, MIC_RATE)
    assert len(corr) >= 5, f"only {len(corr)} voiced windows in {len(out) / MIC_RATE:.2f} s"
    median = sorted(corr)[len(corr) // 2]
    print(f"\nbrowser mic -> RTP gateway: {len(corr)} windows, median correlation {median:.3f}")
    assert median >= 0.8, f"correlations {[round(c, 2) for c in corr]}"
    stats = rig.consoles[0].service.audio
    assert stats is not None and stats.stats.frames_in >= 150
    assert stats.stats.frames_refused == 0
    await a.context.close()
