"""Read another process's memory (Linux ``/proc``), to prove a plaintext never reached it.

Used by the demo's and the tests' "plaintext found at the relay: 0" checks. Needs the same
user as the target (or root); returns what it could read and skips unreadable regions.
"""

from __future__ import annotations

import contextlib
import re

_REGION = re.compile(r"([0-9a-f]+)-([0-9a-f]+) (\S+)")


def process_memory(pid: int) -> bytes:
    """Every readable mapping of process ``pid`` concatenated (b"" if none can be read)."""
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
    except OSError:
        return b""
    return b"".join(chunks)
