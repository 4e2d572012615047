"""Read another process's memory (Linux ``/proc``), to prove a plaintext never reached it.

Used by the demo's and the tests' "plaintext found at the relay: 0" checks. Needs the same
user as the target and ptrace access to it (a parent may read its child under the default
Yama policy; root may read any process). Unreadable regions (guard pages, device mappings)
are skipped, but a search that could read *nothing* proves nothing, so that raises
:class:`MemoryScanError` instead of returning an empty result that finds no plaintext.
"""

from __future__ import annotations

import contextlib
import re

from crypto.errors import CrossbandError

_REGION = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S+)")


class MemoryScanError(CrossbandError):
    """The memory of a process could not be read at all (gone, not ours, no ptrace access)."""


def process_memory(pid: int) -> bytes:
    """Every readable mapping of process ``pid`` concatenated.

    Raises :class:`MemoryScanError` if the process's maps or memory cannot be opened, or if
    no mapping at all could be read.
    """
    chunks: list[bytes] = []
    try:
        with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for line in maps:
                m = _REGION.match(line)
                if not m or "r" not in m.group(3) or "[vsyscall]" in line:
                    continue
                start, end = int(m.group(1), 16), int(m.group(2), 16)
                with contextlib.suppress(OSError, ValueError, OverflowError):
                    mem.seek(start)
                    chunks.append(mem.read(end - start))
    except OSError as exc:
        raise MemoryScanError(
            f"cannot read the memory of process {pid}: {exc.strerror or exc}"
        ) from None
    memory = b"".join(chunks)
    if not memory:
        raise MemoryScanError(f"no memory of process {pid} could be read (no ptrace access?)")
    return memory
