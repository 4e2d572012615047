"""Real SIP peers for the live tests: Debian's ``sipp`` (sip-tester) and ``baresip``, on
127.0.0.1 only, in the test's temporary directory, always stopped by the test.

* :func:`run_sipp` runs one sipp scenario (built-in ``-sn`` or an XML file) to its end, with a
  deadline; the result says whether every call of the scenario succeeded (exit status 0).
  :class:`SippProcess` runs one in the background (sipp as the callee).
* :class:`Baresip` writes a config dir (modules trimmed to what exists in
  /usr/lib/baresip/modules; audio from a WAV through ``aufile``; what it hears recorded by the
  ``sndfile`` filter as ``dump-*-dec.wav``; a null player, ``aubridge``), starts baresip with
  ``-f DIR`` and drives it through ``ctrl_tcp`` (netstring JSON commands: ``dial``,
  ``hangup``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from tests.rigs.tools import RigUnavailable

MODULES = Path("/usr/lib/baresip/modules")
SIPP_DATA = Path("/usr/share/sip-tester")
PACKAGES = {"sipp": "sip-tester", "baresip": "baresip"}


def require(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RigUnavailable(f"`{name}` is not installed (Debian package {PACKAGES[name]})")
    return path


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 (baresip and sipp bind both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            try:
                b.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


@dataclass
class SippResult:
    returncode: int
    log: str


def _sipp_args(scenario: str | Path, target: str, port: int, media_port: int) -> list[str]:
    args = [require("sipp")]
    args += ["-sn", scenario] if isinstance(scenario, str) else ["-sf", str(scenario)]
    args += ["-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1", "-mp", str(media_port)]
    args += ["-nostdin", "-trace_err", "-trace_msg"]
    return [*args, target] if target else args


async def run_sipp(
    scenario: str | Path,
    target: str,
    tmp: Path,
    *,
    extra: tuple[str, ...] = (),
    deadline: float = 30.0,
) -> SippResult:
    """Run a sipp scenario to its end (``-m 1``: one call), killed at ``deadline``."""
    port, media = free_port(), free_port()
    args = _sipp_args(scenario, target, port, media) + ["-m", "1", "-timeout", f"{deadline}s"]
    args += ["-message_file", str(tmp / "sipp-msg.log"), "-error_file", str(tmp / "sipp-err.log")]
    proc = await asyncio.create_subprocess_exec(
        *args, *extra, cwd=tmp, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), deadline + 5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = "".join(p.read_text(errors="replace") for p in tmp.glob("sipp-*.log"))
    return SippResult(proc.returncode or 0, log + err.decode(errors="replace"))


@contextlib.asynccontextmanager
async def sipp_uas(tmp: Path, scenario: str | Path = "uas") -> AsyncIterator[int]:
    """sipp as the callee, in the background; yields its SIP port; killed at the end."""
    port, media = free_port(), free_port()
    args = _sipp_args(scenario, "", port, media) + ["-m", "1"]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=tmp, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await asyncio.sleep(0)  # (sipp binds within milliseconds; the caller retransmits)
        yield port
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def write_wav(path: Path, pcm: np.ndarray, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def read_wav(path: Path, rate: int = 8000) -> np.ndarray:
    """A WAV file as mono float samples at ``rate`` (channels averaged, resampled by soxr)."""
    with wave.open(str(path), "rb") as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        channels, file_rate = w.getnchannels(), w.getframerate()
    x = x.reshape(-1, channels).mean(axis=1)
    return soxr.resample(x, file_rate, rate) if file_rate != rate else x


def noise_signal(seconds: float, rate: int = 8000, seed: int = 1) -> np.ndarray:
    """Band-limited noise (300-3000 Hz) with a syllable-like envelope: no period, so a
    correlation peak is unambiguous."""
    n = int(seconds * rate)
    x = np.random.default_rng(seed).standard_normal(n)
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(n, 1 / rate)
    spectrum[(freqs < 300) | (freqs > 3000)] = 0
    x = np.fft.irfft(spectrum, n)
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * np.arange(n) / rate)
    return np.round(x / np.max(np.abs(x)) * 12000 * env)


def best_correlation(reference: np.ndarray, heard: np.ndarray) -> tuple[float, int]:
    """The highest normalised correlation of ``reference`` with a same-length stretch of
    ``heard``, over every offset (FFT cross-correlation), and that offset in samples."""
    m = len(reference)
    if len(heard) < m:
        return 0.0, 0
    n = 1 << (len(heard) + m).bit_length()
    corr = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(reference, n)), n)
    corr = corr[: len(heard) - m + 1]
    energy = np.concatenate([[0.0], np.cumsum(heard * heard)])
    local = np.sqrt(np.maximum(energy[m:] - energy[:-m], 1e-9))
    scores = corr / (local * np.linalg.norm(reference))
    best = int(np.argmax(scores))
    return float(scores[best]), best


def windowed_match(
    reference: np.ndarray, heard: np.ndarray, window: int = 1600
) -> tuple[list[float], list[int]]:
    """Each ``window``-sample piece of ``reference`` looked for in ``heard`` near where the
    previous one was found (two seconds either side): its best correlation and the offset
    (samples later in ``heard`` than in ``reference``). A re-timer that conceals a late frame
    and then keeps it (a *stretch*) moves the offsets after it by one frame; the audio itself
    is intact, and each piece still correlates fully."""
    scores: list[float] = []
    offsets: list[int] = []
    offset = 0
    for start in range(0, len(reference) - window + 1, window):
        lo = max(0, start + offset - 16000)
        score, at = best_correlation(reference[start : start + window],
                                     heard[lo : start + offset + window + 16000])  # fmt: skip
        scores.append(score)
        offset = lo + at - start
        offsets.append(offset)
    return scores, offsets


class Baresip:
    """A headless baresip in ``directory`` (module docstring)."""

    def __init__(self, directory: Path, wav: Path, codecs: str = "PCMU") -> None:
        require("baresip")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sip_port, self.ctrl_port = free_port(), free_port()
        self.proc: asyncio.subprocess.Process | None = None
        wanted = ["g711", "aufile", "aubridge", "sndfile"] + (
            ["opus"] if codecs.startswith("opus") else []
        )
        apps = ["account", "menu", "ctrl_tcp"]
        missing = [m for m in wanted + apps if not (MODULES / f"{m}.so").exists()]
        if missing:
            raise RigUnavailable(f"baresip lacks the module(s) {', '.join(missing)}")
        mods = wanted
        lines = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "net_interface 127.0.0.1",
            f"audio_source aufile,{wav}",
            "audio_player aubridge,nowhere",
            "audio_alert aubridge,nowhere",
            "ausrc_srate 8000",
            "auplay_srate 8000",
            "ausrc_channels 1",
            "auplay_channels 1",
            f"module_path {MODULES}",
            *[f"module {m}.so" for m in mods],
            *[f"module_app {m}.so" for m in apps],
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"snd_path {self.dir}",
            "rtp_ports 30000-39999",
        ]
        (self.dir / "config").write_text("\n".join(lines) + "\n")
        (self.dir / "accounts").write_text(
            f"<sip:baresip@127.0.0.1>;regint=0;answermode=auto;audio_codecs={codecs}\n"
        )
        (self.dir / "contacts").write_text("")

    async def start(self, timeout: float = 10.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            require("baresip"), "-f", str(self.dir), stdin=asyncio.subprocess.DEVNULL,
            stdout=open(self.dir / "baresip.log", "wb"), stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
                w.close()
                return
            except OSError:
                if self.proc.returncode is not None:
                    break
                await asyncio.sleep(0.05)
        raise AssertionError("baresip did not open ctrl_tcp:\n" + self.log())

    async def command(self, command: str, params: str = "") -> None:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.ctrl_port), 5)
        body = json.dumps({"command": command, "params": params, "token": "t"}).encode()
        w.write(str(len(body)).encode() + b":" + body + b",")
        await w.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(r.read(1), 1.0)  # its answer, or nothing
        w.close()

    def recording(self) -> Path | None:
        found = sorted(self.dir.glob("dump-*-dec.wav"))
        return found[-1] if found else None

    def log(self) -> str:
        path = self.dir / "baresip.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
