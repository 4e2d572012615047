"""Who takes part in the demo's incident, and what the demo counts and checks.

Six positions of three agencies on one incident channel: two dispatch consoles, two radio
gateways, a joint vessel and a Mexican observer console. The three radio positions have an RTP
gateway with a simulated radio (each with its own voice pitch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from crypto.keys import Kem

CH = "shiprider-4471"
OBSERVER = "mx-gn/c4-tijuana"  # the demo narrates what this console sees


class Position(NamedTuple):
    agency: str
    kind: str
    roles: tuple[str, ...]
    role: str  # the device's role in the incident channel
    alias: str
    kem: Kem


DEVICES: dict[str, Position] = {
    "us-cbp/dispatch-blaine": Position(
        "us-cbp",
        "console",
        ("dispatcher", "member"),
        "dispatcher",
        "Blaine Sector dispatch",
        Kem.MLKEM768_X25519,
    ),
    "us-cbp/gw-blaine": Position(
        "us-cbp", "radio-gateway", ("member",), "member", "Blaine P25 RoIP gateway", Kem.X25519
    ),
    "ca-rcmp/dispatch-surrey": Position(
        "ca-rcmp",
        "console",
        ("dispatcher", "member"),
        "dispatcher",
        "RCMP Surrey OCC",
        Kem.MLKEM768_X25519,
    ),
    "ca-rcmp/gw-pacific": Position(
        "ca-rcmp", "radio-gateway", ("member",), "member", "RCMP Pacific RoIP gateway", Kem.X25519
    ),
    "ca-rcmp/vessel-shiprider-1": Position(
        "ca-rcmp",
        "vessel",
        ("member",),
        "member",
        "Shiprider vessel 1 (joint crew)",
        Kem.MLKEM768_X25519,
    ),
    OBSERVER: Position(
        "mx-gn", "console", ("observer",), "observer", "GN C4 Tijuana (observer)", Kem.X25519
    ),
}
MUMBLE_GW = "ca-rcmp/mumble-surrey"  # the RCMP's Mumble channel, when murmurd is installed
XMPP_GW = "ca-rcmp/xmpp-surrey"  # the RCMP's XMPP room, when prosody is installed
NATIVE: dict[str, Position] = {  # joined to the cast only when their server runs
    MUMBLE_GW: Position(
        "ca-rcmp", "radio-gateway", ("member",), "member", "RCMP Mumble bridge", Kem.X25519
    ),
    XMPP_GW: Position(
        "ca-rcmp", "messaging-gateway", ("member",), "member", "RCMP XMPP bridge", Kem.X25519
    ),
}
PITCH = {  # the positions with a radio and an RTP gateway, and their radio's voice pitch (Hz)
    "us-cbp/gw-blaine": 120.0,
    "ca-rcmp/gw-pacific": 190.0,
    "ca-rcmp/vessel-shiprider-1": 150.0,
}
GATEWAYS = tuple(PITCH)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Tally:
    bursts: int = 0
    seals_verified: int = 0
    seals_incomplete: int = 0
    messages_sent: int = 0
    messages_delivered: int = 0
    latencies: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
