"""Events an endpoint reports to its application (adapters, consoles, the demo).

Small frozen dataclasses; none of them carries key material. ``Voice.payload`` and
``Message.body`` are plaintext and exist only inside the endpoint's process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crypto.confirm import Confirmation


@dataclass(frozen=True)
class Connected:
    device: str


@dataclass(frozen=True)
class Disconnected:
    pass


@dataclass(frozen=True)
class ChannelUpdated:
    channel: str
    name: str
    epoch: int
    roster: dict[str, str]  # device -> role
    removed: bool  # this device is no longer a member


@dataclass(frozen=True)
class TalkerChanged:
    channel: str
    talker: str | None  # None: the floor is free
    priority: str | None
    reason: str  # granted / late-entry / released / revoked reason / idle


@dataclass(frozen=True)
class FloorEvent:
    channel: str
    event: str  # granted / denied / queued / released / revoked / idle / emergency
    device: str | None
    priority: str | None = None
    reason: str | None = None
    position: int | None = None


@dataclass(frozen=True)
class Emergency:
    """The relay's floor state says the channel's emergency was declared (``active``) by
    ``by``, or cleared: a *claim* (``source="relay"``, never ``verified``), which a hostile
    relay can fake or hide. What a member signed is :class:`EmergencySigned`."""

    channel: str
    active: bool
    by: str | None
    source: str = "relay"  # always "relay": this event is the relay's word only
    verified: bool = False  # always False; see EmergencySigned


@dataclass(frozen=True)
class EmergencySigned:
    """A member's signed emergency declare (``active``) or clear, checked by this endpoint
    (:mod:`bridge.endpoint.emergency`): ``by`` is the verified signer's device. Only this
    event shows an emergency (or its end) as verified."""

    channel: str
    active: bool
    by: str
    source: str = "signed"
    verified: bool = True


@dataclass(frozen=True)
class Voice:
    channel: str
    sender: str
    payload: bytes = field(repr=False)
    ctr: int = 0  # SFrame counter: +1 per frame from one sender within an epoch
    received_at: float = 0.0  # wall-clock time the frame was decrypted
    epoch: int = 0  # the channel epoch whose key opened it (counters restart per epoch)
    gen: int = 0  # the talker's generation (per boot; a restored snapshot may count again)
    # Attributed by a checkpoint the talker signed (bridge.endpoint.attribute); a frame heard
    # before its checkpoint arrives is unverified here, and TalkerVerified follows.
    verified: bool = False


@dataclass(frozen=True)
class BurstSealed:
    channel: str
    sender: str
    burst: str
    frames: int  # frames the talker sealed
    verified: bool  # signature valid and we received exactly the sealed frames
    received: int  # frames we received


@dataclass(frozen=True)
class Message:
    channel: str
    id: str
    sender: str  # verified signer
    kind: str
    body: bytes = field(repr=False)
    timestamp: int = 0


@dataclass(frozen=True)
class CloneAlarm:
    """Two sender generations of one device heard at once in one epoch: the device's state was
    cloned (two devices speak under one identity) — or a relay held one boot's frames back and
    released them after the device restarted. Its frames are not to be trusted as its own."""

    channel: str
    sender: str
    kid: int  # the KID of the frame that showed it
    epoch: int
    generations: tuple[int, int]  # (heard again, the one that had superseded it)


@dataclass(frozen=True)
class BindingRefused:
    """A genuine signed message or burst seal, refused where it was found: re-encrypted into
    another channel (``other-channel``) or another epoch (``other-commit``), or bound to no
    commit (``unbound``). ``sender`` is its verified signer."""

    channel: str
    sender: str
    kind: str  # message / seal
    reason: str


@dataclass(frozen=True)
class TalkerVerified:
    """``count`` of ``sender``'s frames (KID ``kid``) heard unverified are now attributed to
    it by a checkpoint it signed: only this (or ``Voice.verified``) shows a talker verified."""

    channel: str
    sender: str
    kid: int
    count: int


@dataclass(frozen=True)
class ForgeryAlarm:
    """Voice under ``sender``'s KID that ``sender`` did not sign: a checkpoint lists another
    frame at those counters (``mismatch``), none covered them in time (``uncovered``), or two
    checkpoint chains exist for the KID (``forked``). Another member encrypted them; they
    are not played."""

    channel: str
    sender: str  # the roster sender the KID claims
    kid: int
    ctrs: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class FreshnessAlarm:
    """The relay may be showing this device an old or another history of ``channel``
    (:mod:`bridge.endpoint.freshness`, :mod:`bridge.endpoint.confirmations`). ``kind``:

    - ``behind``: a member signed that it holds a later epoch (the relay withheld our commit);
      we send nothing on our epoch until we hold it;
    - ``fork``: a member signed that it holds another commit for our epoch; ``evidence``
      keeps both signed confirmations, theirs then ours;
    - ``stale``: our epoch is older than the maximum age; we send nothing on it;
    - ``silent``: no member confirmed anything for the bound although others are listed;
    - ``stale-join``: a commit too old to join with was refused (a replayed old history).
    """

    kind: str
    channel: str
    detail: str
    epoch: int = 0  # the epoch we hold (stale-join: the refused commit's)
    evidence: tuple[Confirmation, ...] = ()


@dataclass(frozen=True)
class EmergencyUnsigned:
    """The relay's floor said ``by`` declared an emergency on ``channel`` (an
    :class:`Emergency`, a relay claim), but no member's signed declaration came within
    ``bound`` seconds: the relay dropped the signed message, or made the emergency up."""

    channel: str
    by: str | None
    bound: float


@dataclass(frozen=True)
class RevocationLearned:
    """A newer revocation list of ``agency`` verified against its root and adopted (pushed by
    the relay, or ours once the relay took it); ``revoked``: devices of our channels it
    revokes (a dispatcher re-commits without them: :mod:`bridge.endpoint.revocation`)."""

    agency: str
    number: int
    revoked: tuple[str, ...] = ()


@dataclass(frozen=True)
class RevocationStale:
    """The newest revocation list we hold of ``agency`` is past its next-update time: a
    device revoked since may not have reached us (the relay may be withholding the list)."""

    agency: str
    number: int
    next_update: int


@dataclass(frozen=True)
class Error:
    code: str
    detail: str = ""


Event = (
    Connected
    | Disconnected
    | ChannelUpdated
    | TalkerChanged
    | FloorEvent
    | Emergency
    | EmergencySigned
    | Voice
    | TalkerVerified
    | ForgeryAlarm
    | BurstSealed
    | Message
    | CloneAlarm
    | BindingRefused
    | FreshnessAlarm
    | EmergencyUnsigned
    | RevocationLearned
    | RevocationStale
    | Error
)
