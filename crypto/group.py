"""A member's view of one channel: verified commits, epoch keys, SFrame send and receive.

Theory of operation
-------------------
:meth:`ChannelMember.process_commit` (or its two halves, :meth:`~ChannelMember.prepare_commit`
then :meth:`~ChannelMember.install`, so that an I/O layer can verify on a worker thread) is the
only way keys enter: the member verifies the commit itself
(:func:`~crypto.channel.verify_commit` against its own trust bundle and its own record of
the previous commit), opens the epoch secret sealed to its HPKE key, and checks the key
confirmation in the signed commit. A commit that leaves this device out marks it removed: it
derives nothing for that epoch.

Two ways back in, so that a member is never stuck on ``epoch-skip``:

- *Re-added after removal.* The commit that re-adds a removed member is usually several epochs
  ahead: it is verified like a join (an MLS Welcome), and must still exceed our epoch.
- *A refused link.* A commit that is authentic but that we refuse for its content (a roster
  member we hold a newer revocation for, say) may be installed as a *chain link*: a
  :class:`PreparedCommit` with ``refused`` set, built by the I/O layer once it checked the
  commit's authenticity. No key is derived for it and we may not send
  (:attr:`ChannelMember.refused`), but the next commit whose ``prev`` is its hash verifies
  against it and brings us back; the same commit with a good bundle replaces it.

Key ids follow RFC 9605 §5.2 — context (0 voice, 1 data: signed messages and burst seals),
sender index, epoch bits — with the member's per-boot *generation* in the high bits
(:mod:`crypto.epoch`): a state file restored from a snapshot, or cloned, sends under new KIDs,
hence new keys, and never reuses a (key, KID, CTR); listeners alarm on two generations of one
sender at once (:meth:`ChannelMember.take_clones`). The SFrame base key for a KID is
``HKDF-Expand(HKDF-Extract(commit_hash, epoch_secret), "crossband/v1 sframe base key" ||
suite || KID, Nh)``; RFC 9605 §4.4.2 then derives the AEAD key and salt.

On a new epoch the previous one is kept for ``grace`` seconds so frames in flight still open,
then its secret, keys and replay windows are dropped. Sending always uses the newest epoch;
every counter is reserved through the :class:`~crypto.counters.CounterStore` first. Receiving
checks an RFC 3711 replay window per KID and updates it only after the frame authenticated;
with a ``marks`` store the windows' high-water marks are durable (:mod:`crypto.replay`), so a
frame heard before a restart is refused after it. Signed messages and seals are bound to the
channel and the commit hash of the epoch that opened them (:func:`~crypto.messages.check_binding`).
Every receive failure is the same :class:`~crypto.errors.DecryptError`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

from .agreement import Agreement, RevocationList
from .channel import Commit, CommitBundle, key_confirmation, seal_info, verify_commit
from .checkpoint import Checkpoint
from .counters import CounterStore, ReplayMarkSource, SendCounter
from .epoch import (
    CONTEXT_DATA,
    CONTEXT_VOICE,
    EPOCH_BITS,
    EPOCH_MASK,
    GEN_SHIFT,
    CloneSeen,
    EpochKeys,
    NotPermittedError,
    Received,
    make_kid,
    new_generation,
    split_kid,
)
from .errors import DecryptError, Refusal, VerificationError
from .identity import Credential, DeviceKeys, TrustBundle
from .messages import BurstSeal, SignedMessage, check_binding, decode_signed
from .sframe import decode_header

__all__ = [
    "CONTEXT_DATA",
    "CONTEXT_VOICE",
    "EPOCH_BITS",
    "ChannelMember",
    "CloneSeen",
    "NotPermittedError",
    "PreparedCommit",
    "Received",
    "make_kid",
    "split_kid",
]
_EPOCH_MASK = EPOCH_MASK


class PreparedCommit(NamedTuple):
    """A verified commit and our opened epoch secret (None: the commit leaves us out), or an
    authentic commit we refused (``refused``): a chain link only, never a key."""

    bundle: CommitBundle
    commit: Commit
    previous: Commit | None
    secret: bytes | None
    refused: VerificationError | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"PreparedCommit(channel={self.commit.channel!r}, epoch={self.commit.epoch})"


class ChannelMember:
    """One device's cryptographic state for one channel."""

    def __init__(
        self,
        device: str,
        keys: DeviceKeys,
        trust: TrustBundle,
        counters: CounterStore,
        *,
        grace: float = 5.0,
        replay_window: int = 128,
        counter_block: int = 1024,
        marks: CounterStore | None = None,
        generation: int | None = None,
    ) -> None:
        """``marks``: where voice replay marks are kept durably (None: those of ``counters``
        if it offers any, else in memory only); ``generation``: this boot's sender generation
        (None: a fresh random one)."""
        self.device = device
        self.generation = new_generation() if generation is None else generation
        if marks is None and isinstance(counters, ReplayMarkSource):
            marks = counters.replay_marks
        self._marks = marks
        self._clones: list[CloneSeen] = []
        self._keys = keys
        self._trust = trust
        self._counters = counters
        self.grace = grace
        self._window = replay_window
        self._block = counter_block
        self._epochs: list[EpochKeys] = []  # newest last
        self._send: dict[int, SendCounter] = {}
        self.last_commit: Commit | None = None
        self.removed = False
        self.refused: Refusal | None = None  # last_commit is a refused link: no key, no sending
        self._before_link: Commit | None = None  # the commit the link was verified against
        self._retiring: float | None = None  # earliest retire_at among kept epochs

    # -- commits ---------------------------------------------------------------------------

    @property
    def epoch(self) -> int | None:
        if not self._epochs or self.removed or self.refused is not None:
            return None
        return self._epochs[-1].commit.epoch

    @property
    def commit(self) -> Commit | None:
        return self.last_commit

    @property
    def agreement(self) -> Agreement | None:
        """The agreement the newest verified commit cites (with every party's signature)."""
        return self._epochs[-1].bundle.agreement if self._epochs else None

    def credential(self, device: str) -> Credential | None:
        for ep in reversed(self._epochs):
            cred = ep.bundle.credentials.get(device)
            if cred is not None:
                return cred
        return None

    def process_commit(
        self,
        bundle: CommitBundle,
        now: float,
        revocations: dict[str, RevocationList] | None = None,
    ) -> Commit:
        """Verify ``bundle`` and move to its epoch; raises VerificationError on any refusal."""
        return self.install(self.prepare_commit(bundle, now, revocations), now)

    def prepare_commit(
        self,
        bundle: CommitBundle,
        now: float,
        revocations: dict[str, RevocationList] | None = None,
    ) -> PreparedCommit:
        """Every check, and the opening of our sealed secret, without changing any state.

        This is the expensive half (a 500-member commit is ~100 ms): an I/O layer may run it
        on a worker thread and then call :meth:`install` on its own thread. Any refusal
        raises VerificationError (the I/O layer may still keep the commit as a link)."""
        previous = self.last_commit
        against = previous
        if self.refused is not None and previous is not None:
            if hmac.compare_digest(bundle.commit.hash, previous.hash):
                against = self._before_link  # the commit of our link, now with a good bundle
        commit = self._verify(bundle, now, against, revocations)
        secret = None if commit.entry(self.device) is None else self._open(bundle, commit)
        return PreparedCommit(bundle, commit, previous, secret)

    def _verify(
        self,
        bundle: CommitBundle,
        now: float,
        previous: Commit | None,
        revocations: dict[str, RevocationList] | None,
    ) -> Commit:
        try:
            return verify_commit(
                bundle, self._trust, now, previous=previous, revocations=revocations
            )
        except VerificationError as exc:
            # Re-added after a removal (or a link that left us out): the commits made while we
            # were out were not ours to see, so the one that brings us back is checked like a
            # join, never a rollback.
            c, p = bundle.commit, previous
            out = self.removed or (self.refused is not None and p and not p.entry(self.device))
            if not (exc.code is Refusal.EPOCH_SKIP and out and p and c.channel == p.channel):
                raise
            if c.epoch <= p.epoch or c.entry(self.device) is None:
                raise
            return verify_commit(
                bundle, self._trust, now, previous=None, revocations=revocations, earlier=p
            )

    def _open(self, bundle: CommitBundle, commit: Commit) -> bytes:
        sealed = bundle.sealed.get(self.device)
        if sealed is None:
            raise VerificationError(Refusal.NOT_A_MEMBER, "no epoch secret sealed to us")
        try:
            secret = self._keys.hpke.open(
                sealed, seal_info(commit.channel, commit.epoch, commit.hash)
            )
        except DecryptError:
            raise VerificationError(Refusal.KEY_CONFIRMATION, "sealed secret did not open")
        if not hmac.compare_digest(
            key_confirmation(secret, commit.channel, commit.epoch), commit.confirm
        ):
            raise VerificationError(Refusal.KEY_CONFIRMATION, "epoch secret does not match")
        return secret

    def install(self, prepared: PreparedCommit, now: float) -> Commit:
        """Move to a prepared commit's epoch (cheap). Refused if the chain moved meanwhile."""
        if prepared.previous is not self.last_commit:
            raise VerificationError(Refusal.WRONG_PREVIOUS, "another commit was installed first")
        commit = prepared.commit
        self._retire_all(now)
        self.last_commit = commit
        if prepared.refused is not None:  # a link: the chain moves on, we hold no key for it
            self._before_link, self.refused = prepared.previous, prepared.refused.code
            return commit
        self.refused = None
        if prepared.secret is None:  # a commit without us: we are out from this epoch on
            self.removed = True
            return commit
        # Never keep two epochs whose KIDs would collide in the epoch bits.
        self._epochs = [
            e
            for e in self._epochs
            if (e.commit.epoch & _EPOCH_MASK) != (commit.epoch & _EPOCH_MASK)
        ]
        self._epochs.append(EpochKeys(prepared.bundle, prepared.secret))
        self._send = {}
        self.removed = False
        return commit

    def _retire_all(self, now: float) -> None:
        for e in self._epochs:
            if e.retire_at is None:
                e.retire_at = now + self.grace
        self._retiring = self.get_timer()

    def expire(self, now: float) -> None:
        """Erase the keys of epochs whose grace period is over."""
        keep = []
        for e in self._epochs:
            if e.retire_at is not None and now >= e.retire_at:
                e.erase()
            else:
                keep.append(e)
        self._epochs = keep
        self._retiring = self.get_timer()

    def get_timer(self) -> float | None:
        times = [e.retire_at for e in self._epochs if e.retire_at is not None]
        return min(times) if times else None

    # -- sending ---------------------------------------------------------------------------

    def may_send(self) -> bool:
        c = self.last_commit
        return (
            not self.removed
            and self.refused is None
            and c is not None
            and c.may_send(self.device)
            and bool(self._epochs)
        )

    def protect(self, payload: bytes, context: int = CONTEXT_VOICE, metadata: bytes = b"") -> bytes:
        """Encrypt ``payload`` for the current epoch; returns the SFrame frame."""
        if not self.may_send():
            raise NotPermittedError("this device may not send in this channel now")
        ep = self._epochs[-1]
        entry = ep.commit.entry(self.device)
        assert entry is not None and entry.index is not None
        kid = make_kid(context, entry.index, ep.commit.epoch, self.generation)
        counter = self._send.get(kid)
        if counter is None:
            label = ep.counter_label(kid)
            counter = self._send[kid] = SendCounter(self._counters, label, self._block)
        return ep.key(kid).protect(counter.next(), payload, metadata)

    def sign_message(
        self, msg_id: str, kind: str, body: bytes, timestamp_ms: int
    ) -> tuple[SignedMessage, bytes]:
        """Sign a text/data message, bound to this channel and the commit we send under, and
        encrypt it; returns (message, frame)."""
        if not self.may_send():
            raise NotPermittedError("this device may not send in this channel now")
        c = self._epochs[-1].commit
        msg = SignedMessage(
            msg_id, c.channel, self.device, timestamp_ms, kind, body, commit=c.hash
        ).signed(self._keys.sign)
        return msg, self.protect(msg.encode(), CONTEXT_DATA)

    def seal_burst(self, seal: BurstSeal) -> tuple[BurstSeal, bytes]:
        """Sign ``seal`` bound to the commit we send under, and encrypt it."""
        if not self.may_send():
            raise NotPermittedError("this device may not send in this channel now")
        signed = replace(seal, commit=self._epochs[-1].commit.hash).signed(self._keys.sign)
        return signed, self.protect(signed.encode(), CONTEXT_DATA)

    # -- receiving -------------------------------------------------------------------------

    def unprotect(
        self,
        frame: bytes,
        now: float,
        metadata: bytes = b"",
        gate: Callable[[int, int], bool] | None = None,
    ) -> Received:
        """Open a frame from any roster sender of a live epoch, or raise DecryptError. A voice
        frame ``gate(kid, ctr)`` says no to does not move the replay window (nobody vouched for
        it yet, :mod:`crypto.attribution`): :meth:`advance` does, once it is attributed."""
        if self._retiring and now >= self._retiring:
            self.expire(now)
        kid, ctr, hlen = decode_header(frame)
        context, index, ebits = split_kid(kid)
        ep = None
        for e in self._epochs:
            if (e.commit.epoch & _EPOCH_MASK) == ebits:
                ep = e
                break
        if ep is None:
            raise DecryptError()
        sender = ep.senders.get(index)
        if sender is None:
            raise DecryptError()
        window = ep.windows.get(kid)
        if window is None:
            window = ep.window(kid, self._window, self._marks)
        if not window.check(ctr):
            raise DecryptError()
        payload = ep.key(kid).unprotect_body(frame[:hlen], ctr, frame[hlen:], metadata)
        if gate is None or context != CONTEXT_VOICE or gate(kid, ctr):
            if ctr >= window.mark:  # on record before it counts as heard (crypto.replay)
                ep.record(window, kid, ctr, self._marks)
            window.update(ctr)
        gen = kid >> GEN_SHIFT
        if ep.gens.current.get(index) != gen:
            clone = ep.heard(index, kid, now)
            if clone is not None:
                self._clones.append(clone)
        return Received(sender, context, ep.commit.epoch, kid, ctr, payload, ep.commit.hash, gen)

    def advance(self, kid: int, ctr: int) -> None:
        """Move ``kid``'s replay window to ``ctr`` (a frame a checkpoint has attributed)."""
        for ep in self._epochs:
            if (ep.commit.epoch & _EPOCH_MASK) == split_kid(kid)[2]:
                ep.advance(kid, ctr, self._marks)

    def sign_checkpoint(self, cp: Checkpoint) -> bytes:
        """Sign a voice checkpoint (:mod:`crypto.checkpoint`) and encrypt it as data."""
        return self.protect(cp.signed(self._keys.sign).encode(), CONTEXT_DATA)

    def take_clones(self) -> list[CloneSeen]:
        """The clone alarms raised by frames opened since the last call."""
        out, self._clones = self._clones, []
        return out

    def open_signed(self, received: Received) -> SignedMessage | BurstSeal:
        """Parse and verify a DATA payload; its signer must be the frame's roster sender and
        it must be bound to this channel and the commit of the epoch that opened it
        (``wrong-channel`` otherwise, see :func:`~crypto.messages.check_binding`)."""
        if received.context != CONTEXT_DATA:
            raise VerificationError(Refusal.MALFORMED, "not a data frame")
        item = decode_signed(received.payload)
        if item.sender != received.sender:
            raise VerificationError(Refusal.BAD_SIGNATURE, "signer is not the frame's sender")
        cred = self.credential(item.sender)
        if cred is None:
            raise VerificationError(Refusal.UNKNOWN_DEVICE, item.sender)
        item.verify(cred)
        channel = self.last_commit.channel if self.last_commit else ""
        check_binding(item, channel, received.commit)
        return item
