"""Kernel-level packet loss: a network namespace joined to the host by a veth pair.

``lossy_namespace(loss_in=5)`` creates a namespace ``cbloss-<pid>-<n>``, a veth pair with the
host end ``10.A.B.1/30`` and the namespace end ``10.A.B.2/30`` (a /30 no interface on the
host uses), brings both up, and installs in the namespace (never on the host)::

    table inet crossband_loss    { chain input  { type filter hook input priority 0; ...
        <match> numgen random mod 100 < N counter drop } }
    table netdev crossband_egress { chain egress { type filter hook egress device <ns end> ...
        <match> numgen random mod 100 < M counter drop } }

``loss_in`` drops what enters the namespace (on the input hook, as in issue 8);
``loss_out`` drops what leaves it. The egress hook is used for the way out because a drop on
the output hook makes the sender's ``sendto()`` fail with EPERM, which no real link does; an
egress drop is silent. ``match`` is an nftables expression (default all UDP; e.g.
``udp dport 40000``; ``meta l4proto tcp`` loses TCP segments, which TCP retransmits);
``match_in`` / ``match_out`` replace it for one hook (e.g. only what comes from a relay's
port on the way in and only what goes to it on the way out).

Put the lossy side in the namespace: a process with :meth:`LossyNamespace.argv` (``nsenter
--net``), a socket made there by :meth:`LossyNamespace.socket` from this process (a
short-lived thread joins the namespace, creates the socket and ends; a socket stays in the
namespace it was made in, whichever thread uses it), or a whole event loop on a thread that
joined it (:class:`tests.rigs.netns_loop.NamespaceLoop`). Leaving the block deletes the veth pair
and the namespace and checks that both are gone. Needs ``ip`` (iproute2), ``nft``
(nftables) and root: without them, :class:`tests.rigs.tools.RigUnavailable`.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.rigs.tools import RigUnavailable, is_permission_error, require_root, require_tool

CLONE_NEWNET = 0x40000000
_counter = itertools.count()


class NetnsError(RuntimeError):
    """An ``ip``/``nft`` command failed for a reason other than a missing permission."""


def _run(argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        if is_permission_error(err):
            raise RigUnavailable(f"`{' '.join(argv[:4])}` was refused: {err}")
        raise NetnsError(f"`{' '.join(argv)}` exited with {proc.returncode}: {err}")
    return proc.stdout


@dataclass
class LossyNamespace:
    name: str
    host_if: str
    ns_if: str
    host_addr: str
    ns_addr: str
    match: str = "meta l4proto udp"
    match_in: str | None = None  # None: ``match``
    match_out: str | None = None

    def argv(self, command: list[str]) -> list[str]:
        """``command`` run inside the namespace. ``nsenter --net`` joins only the network
        namespace; ``ip netns exec`` would also remount ``/`` (``mount --make-rslave``), which
        fails where ``/`` is not a mount point, as in a chroot."""
        return ["nsenter", f"--net=/run/netns/{self.name}", "--", *command]

    def socket(self, kind: socket.SocketKind = socket.SOCK_DGRAM) -> socket.socket:
        """A new IPv4 socket that lives in the namespace (bind it to :attr:`ns_addr`)."""
        made: list[socket.socket | BaseException] = []

        def inside() -> None:
            try:
                self.join_thread()
                made.append(socket.socket(socket.AF_INET, kind))
            except BaseException as exc:  # handed to the caller's thread below
                made.append(exc)

        thread = threading.Thread(target=inside, name=f"netns-{self.name}")
        thread.start()
        thread.join()
        result = made[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def join_thread(self) -> None:
        """Move the calling thread (only it) into the namespace (``setns``); threads it
        starts afterwards are born there too. Never call it on a thread that returns to
        other work in the host namespace."""
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def set_loss(self, loss_in: int = 0, loss_out: int = 0) -> None:
        """Replace the drop rules (percentages, 0..100) of both hooks."""
        for pct in (loss_in, loss_out):
            if not 0 <= pct <= 100:
                raise ValueError(f"loss is a percentage in [0, 100], got {pct}")
        rule_in = self._rule(loss_in, self.match_in or self.match)
        rule_out = self._rule(loss_out, self.match_out or self.match)
        ruleset = (
            "flush ruleset\n"
            "table inet crossband_loss {\n"
            "  chain input { type filter hook input priority 0; policy accept;\n"
            f"    {rule_in}\n  }}\n}}\n"
            "table netdev crossband_egress {\n"
            f'  chain egress {{ type filter hook egress device "{self.ns_if}" priority 0;\n'
            f"    policy accept;\n    {rule_out}\n  }}\n}}\n"
        )
        _run(self.argv(["nft", "-f", "-"]), stdin=ruleset)

    @staticmethod
    def _rule(pct: int, match: str) -> str:
        if pct == 0:
            return ""
        if pct == 100:  # numgen's range is 0..99
            return f"{match} counter drop"
        return f"{match} numgen random mod 100 < {pct} counter drop"

    def dropped(self) -> dict[str, int]:
        """Packets each hook's rule has dropped so far (the rules' counters)."""
        out = json.loads(_run(self.argv(["nft", "-j", "list", "ruleset"])))
        counts = {"in": 0, "out": 0}
        for item in out.get("nftables", []):
            rule = item.get("rule")
            if not rule:
                continue
            side = "in" if rule["family"] == "inet" else "out"
            for expr in rule["expr"]:
                if "counter" in expr:
                    counts[side] += int(expr["counter"]["packets"])
        return counts


def _free_subnet() -> tuple[str, str]:
    used = _run(["ip", "-o", "-4", "addr", "show"])
    for n in itertools.count(os.getpid() % 4096):
        a, b = 200 + (n // 64) % 56, (n % 64) * 4
        prefix = f"10.{a}.{b}."
        if f" {prefix}" not in used:
            return f"{prefix}1", f"{prefix}2"
    raise AssertionError("unreachable")


def check_available() -> None:
    """:class:`RigUnavailable` unless ``ip``, ``nft`` and root are all here."""
    require_tool("ip")
    require_tool("nft")
    require_root("a network namespace with nftables loss")


@contextmanager
def lossy_namespace(
    loss_in: int = 0,
    loss_out: int = 0,
    *,
    match: str = "meta l4proto udp",
    match_in: str | None = None,
    match_out: str | None = None,
) -> Iterator[LossyNamespace]:
    check_available()
    n = next(_counter)
    tag = f"{os.getpid() % 100000}{n}"
    host_addr, ns_addr = _free_subnet()
    ns = LossyNamespace(
        f"cbloss-{tag}", f"cbh{tag}", f"cbn{tag}", host_addr, ns_addr, match, match_in, match_out
    )
    _run(["ip", "netns", "add", ns.name])
    try:
        _run(
            ["ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if]
            + ["netns", ns.name]
        )
        _run(["ip", "addr", "add", f"{host_addr}/30", "dev", ns.host_if])
        _run(["ip", "link", "set", ns.host_if, "up"])
        _run(ns.argv(["ip", "addr", "add", f"{ns_addr}/30", "dev", ns.ns_if]))
        _run(ns.argv(["ip", "link", "set", ns.ns_if, "up"]))
        _run(ns.argv(["ip", "link", "set", "lo", "up"]))
        ns.set_loss(loss_in, loss_out)
        yield ns
    finally:
        _teardown(ns)


def _teardown(ns: LossyNamespace) -> None:
    # Deleting the namespace frees its end of the veth pair only later (asynchronously), so
    # delete the pair first: that is immediate, and takes both ends.
    links = _run(["ip", "-o", "link", "show"])
    if f" {ns.host_if}@" in links or f" {ns.host_if}:" in links:
        _run(["ip", "link", "del", ns.host_if])
    _run(["ip", "netns", "del", ns.name])
    left = _run(["ip", "netns", "list"]).split()
    links = _run(["ip", "-o", "link", "show"])
    if ns.name in left or f" {ns.host_if}@" in links:
        raise NetnsError(f"namespace {ns.name} or link {ns.host_if} outlived its test")
