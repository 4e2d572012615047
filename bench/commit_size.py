"""Bytes delivered per member for a rekey (issue 10): the full commit bundle every member gets
today, against one member's view of it (:mod:`crypto.commit_split`).

    .venv/bin/python bench/commit_size.py [--members 500]

One dispatcher and ``--members`` - 1 members, all hybrid ML-KEM-768 + X25519 (the agreement
default). Epoch 1 lists everyone; epoch 2 is a rekey (same roster), epoch 2' removes one
member. A member that holds epoch 1 (and so its credentials) receives its view against epoch 1;
a joiner receives the whole roster and every credential. Also: the time the relay would spend
cutting every member's view of one commit, and one member's rebuild + full verification.
Target: <= 20 KB per member for the 500-member hybrid rekey (today 1.86 MB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crypto.commit_split import member_view, member_views, rebuild  # noqa: E402
from crypto.keys import Kem  # noqa: E402
from tests.world import make_world  # noqa: E402


def main(n: int) -> None:
    w = make_world()
    disp = w.device("us-cbp", "disp", ("dispatcher", "member"), Kem.MLKEM768_X25519)
    members = [(disp, "dispatcher")]
    for i in range(n - 1):
        d = w.device("ca-rcmp", f"m{i:03d}", ("member",), Kem.MLKEM768_X25519)
        members.append((d, "member"))
    e1 = w.commit(disp, members, None)
    rekey = w.commit(disp, members, e1, now=w.now + 1)
    removal = w.commit(disp, members[:-1], e1, now=w.now + 1)
    known = frozenset(c.fingerprint for c in e1.credentials.values())
    cache = {c.fingerprint: c for c in e1.credentials.values()}
    full = len(rekey.encode())
    who = members[n // 2][0]
    t0 = time.perf_counter()
    devices = [d.id for d, _ in members]
    views = [v.encode() for v in member_views(rekey, devices, e1.commit, known).values()]
    cut = time.perf_counter() - t0
    per = max(len(v) for v in views)
    gone = len(member_view(removal, who.id, e1.commit, known).encode())
    joiner = len(member_view(rekey, who.id, None).encode())
    m = w.member(who)
    m.process_commit(e1, w.now + 2)
    t0 = time.perf_counter()
    view = member_view(rekey, who.id, e1.commit, known)
    m.process_commit(rebuild(view, e1.commit, e1.agreement, cache), w.now + 2)
    verify = time.perf_counter() - t0
    assert m.epoch == 2
    print(f"{n}-member hybrid rekey, bytes delivered to each member:")
    print(f"  full bundle (today):               {full:>10,} B")
    print(f"  member view, rekey:                {per:>10,} B  (largest of {n})")
    print(f"  member view, one member removed:   {gone:>10,} B")
    print(f"  joiner (whole roster, credentials): {joiner:>9,} B")
    egress = sum(map(len, views))
    print(f"  relay egress per rekey: {full * n / 1e6:,.1f} MB today, {egress / 1e6:,.2f} MB")
    print(f"  cutting {n} views: {cut * 1000:.0f} ms (encoded)")
    print(f"  one member's rebuild + full verification: {verify * 1000:.0f} ms")
    print(f"target <= 20,000 B per member: {'met' if per <= 20_000 else 'NOT met'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=500)
    main(ap.parse_args().members)
