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

- *Re-added after removal.* A removed member is not sent the commits made while it is out, so
  the commit that re-adds it is usually several epochs ahead. It is then verified like a join
  (an MLS Welcome): every check except the link to our previous commit, whose epoch it must
  still exceed (no rollback).
- *A refused link.* A commit that is authentic but that we refuse for its content (a roster
  member we hold a newer revocation for, say) may be installed as a *chain link*: a
  :class:`PreparedCommit` with ``refused`` set, built by the I/O layer once it checked the
  commit's authenticity. No key is derived for it and we may not send
  (:attr:`ChannelMember.refused`), but the next commit whose ``prev`` is its hash verifies
  against it and brings us back; the same commit with a good bundle replaces it.

Key ids follow RFC 9605 §5.2: ``KID = context << (S + E) | sender_index << E | epoch mod 2^E``
with ``E = 4`` epoch bits and ``S = 12`` sender bits; context 0 carries voice, context 1 data
(signed messages and burst seals), each with its own counter. The SFrame base key for a KID is
``HKDF-Expand(HKDF-Extract(commit_hash, epoch_secret), "crossband/v1 sframe base key" ||
suite || KID, Nh)``; RFC 9605 §4.4.2 then derives the AEAD key and salt.

On a new epoch the previous one is kept for ``grace`` seconds so frames in flight still open,
then its secret, keys and replay windows are dropped. Sending always uses the newest epoch;
every counter is reserved through the :class:`~crypto.counters.CounterStore` first. Receiving
checks an RFC 3711 replay window per KID and updates it only after the frame authenticated.
Every receive failure is the same :class:`~crypto.errors.DecryptError`.
"""

from __future__ import annotations

import hmac
import struct
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .agreement import Agreement, RevocationList
from .channel import (
    SENDER_BITS,
    Commit,
    CommitBundle,
    key_confirmation,
    seal_info,
    verify_commit,
)
from .counters import CounterStore, SendCounter
from .errors import CryptoError, DecryptError, Refusal, VerificationError
from .identity import Credential, DeviceKeys, TrustBundle
from .messages import BurstSeal, SignedMessage, decode_signed
from .replay import ReplayWindow
from .sframe import CipherSuite, SFrameKey, decode_header, suite_params

EPOCH_BITS = 4
CONTEXT_VOICE = 0
CONTEXT_DATA = 1
_EPOCH_MASK = (1 << EPOCH_BITS) - 1
_SENDER_MASK = (1 << SENDER_BITS) - 1


def make_kid(context: int, index: int, epoch: int) -> int:
    if not 0 <= index <= _SENDER_MASK or context not in (CONTEXT_VOICE, CONTEXT_DATA):
        raise ValueError("bad KID fields")
    return (context << (SENDER_BITS + EPOCH_BITS)) | (index << EPOCH_BITS) | (epoch & _EPOCH_MASK)


def split_kid(kid: int) -> tuple[int, int, int]:
    """Return (context, sender index, epoch bits)."""
    return kid >> (SENDER_BITS + EPOCH_BITS), (kid >> EPOCH_BITS) & _SENDER_MASK, kid & _EPOCH_MASK


class Received(NamedTuple):
    """A frame that authenticated: who sent it (by the verified roster), and what it said."""

    sender: str
    context: int
    epoch: int
    kid: int
    ctr: int
    payload: bytes

    def __repr__(self) -> str:  # never print plaintext
        return (
            f"Received(sender={self.sender!r}, context={self.context}, epoch={self.epoch},"
            f" kid={self.kid}, ctr={self.ctr})"
        )


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


class NotPermittedError(CryptoError):
    """Local misuse: this device may not send in this channel (observer, removed, no epoch)."""


class _Epoch:
    __slots__ = ("commit", "bundle", "suite", "prk", "keys", "windows", "retire_at", "senders")

    def __init__(self, bundle: CommitBundle, secret: bytes) -> None:
        self.commit = bundle.commit
        self.bundle = bundle.without_secrets()
        self.suite = CipherSuite(self.commit.suite)
        self.prk = _extract(bytes.fromhex(self.commit.hash), secret)
        self.keys: dict[int, SFrameKey] = {}
        self.windows: dict[int, ReplayWindow] = {}
        self.retire_at: float | None = None
        self.senders = {e.index: e.device for e in self.commit.roster if e.index is not None}

    def key(self, kid: int) -> SFrameKey:
        k = self.keys.get(kid)
        if k is None:
            nh = suite_params(self.suite).nh
            info = b"crossband/v1 sframe base key" + struct.pack(">HQ", self.suite, kid)
            base = HKDFExpand(hashes.SHA256(), nh, info).derive(self.prk)
            k = self.keys[kid] = SFrameKey(self.suite, base, kid)
        return k

    def erase(self) -> None:
        # Python cannot overwrite immutable bytes; dropping every reference is what we can do.
        self.keys.clear()
        self.windows.clear()
        self.prk = b""


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, "sha256").digest()  # HKDF-Extract, RFC 5869 §2.2


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
    ) -> None:
        self.device = device
        self._keys = keys
        self._trust = trust
        self._counters = counters
        self.grace = grace
        self._window = replay_window
        self._block = counter_block
        self._epochs: list[_Epoch] = []  # newest last
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
        self._epochs.append(_Epoch(prepared.bundle, prepared.secret))
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
        kid = make_kid(context, entry.index, ep.commit.epoch)
        counter = self._send.get(kid)
        if counter is None:
            label = f"{ep.commit.hash[:32]}/{kid}"
            counter = self._send[kid] = SendCounter(self._counters, label, self._block)
        return ep.key(kid).protect(counter.next(), payload, metadata)

    def sign_message(
        self, msg_id: str, kind: str, body: bytes, timestamp_ms: int
    ) -> tuple[SignedMessage, bytes]:
        """Sign a text/data message and encrypt it; returns (message, frame)."""
        c = self.last_commit
        if c is None:
            raise NotPermittedError("no channel")
        msg = SignedMessage(msg_id, c.channel, self.device, timestamp_ms, kind, body).signed(
            self._keys.sign
        )
        return msg, self.protect(msg.encode(), CONTEXT_DATA)

    def seal_burst(self, seal: BurstSeal) -> tuple[BurstSeal, bytes]:
        signed = seal.signed(self._keys.sign)
        return signed, self.protect(signed.encode(), CONTEXT_DATA)

    # -- receiving -------------------------------------------------------------------------

    def unprotect(self, frame: bytes, now: float, metadata: bytes = b"") -> Received:
        """Open a frame from any roster sender of a live epoch, or raise DecryptError."""
        if self._retiring and now >= self._retiring:
            self.expire(now)
        kid, ctr, hlen = decode_header(frame)
        context, index, ebits = split_kid(kid)
        ep = None
        for e in self._epochs:
            if (e.commit.epoch & _EPOCH_MASK) == ebits:
                ep = e
                break
        if ep is None or context > CONTEXT_DATA:
            raise DecryptError()
        sender = ep.senders.get(index)
        if sender is None:
            raise DecryptError()
        window = ep.windows.get(kid)
        if window is None:
            window = ep.windows[kid] = ReplayWindow(self._window)
        if not window.check(ctr):
            raise DecryptError()
        payload = ep.key(kid).unprotect_body(frame[:hlen], ctr, frame[hlen:], metadata)
        window.update(ctr)
        return Received(sender, context, ep.commit.epoch, kid, ctr, payload)

    def open_signed(self, received: Received) -> SignedMessage | BurstSeal:
        """Parse and verify a DATA payload; its signer must be the frame's roster sender."""
        if received.context != CONTEXT_DATA:
            raise VerificationError(Refusal.MALFORMED, "not a data frame")
        item = decode_signed(received.payload)
        if item.sender != received.sender:
            raise VerificationError(Refusal.BAD_SIGNATURE, "signer is not the frame's sender")
        cred = self.credential(item.sender)
        if cred is None:
            raise VerificationError(Refusal.UNKNOWN_DEVICE, item.sender)
        return item.verify(cred)
