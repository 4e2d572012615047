"""Who really spoke: the endpoint's side of voice checkpoints (issue 9, fault 1).

Part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore`, driven by
:class:`~bridge.endpoint.voice.VoicePath`. A talker signs a checkpoint over its frames every
200 ms and sends it in band, as a data frame on the voice path (:mod:`crypto.checkpoint`). Here
the listener:

- checks each checkpoint: signed by the roster sender of the data KID it came under, naming
  this channel, the commit of the epoch that opened it, and that sender's voice KID (same
  sender index and generation); anything else is refused and counted;
- asks :class:`crypto.attribution.Attribution` about every voice frame: a *verified* frame is
  reported as such (``Voice.verified``); a *forged* one (a checkpoint lists another hash at its
  counter, or none covers it within the bound) raises :class:`~bridge.endpoint.events.ForgeryAlarm`
  naming the KID and the roster sender it claims to be — and is not played;
- lets the replay window move only for attributed frames (:meth:`Attributor.gate`), so a
  forged frame, at a high counter or at the talker's next one, cannot make the real talker's
  frames look like replays; a frame still waiting for its checkpoint is deduplicated by hash.

Events and the console say "verified" only from these signatures, never from the relay's
floor messages.
"""

from __future__ import annotations

from bridge.endpoint import events as ev
from bridge.endpoint.output import Output
from crypto.attribution import Attribution, Finding, Verdict
from crypto.checkpoint import MAGIC, decode_checkpoint
from crypto.epoch import GEN_SHIFT, Received, split_kid
from crypto.errors import Refusal, VerificationError
from crypto.group import CONTEXT_VOICE, ChannelMember


def is_checkpoint(r: Received) -> bool:
    return r.payload[:4] == MAGIC


class Attributor:
    def __init__(self, out: Output, stats: dict[str, int]) -> None:
        self._out = out
        self._stats = stats
        self.book = Attribution()
        self._claims: dict[int, tuple[str, str, ChannelMember]] = {}  # kid -> (ch, sender, ..)

    @staticmethod
    def gate(kid: int, ctr: int) -> bool:
        """May this voice frame move its replay window before it is attributed? No: even a
        bounded jump would let a frame forged at the talker's next counter shut out the real
        one. Until its checkpoint comes a frame is deduplicated by its hash (:meth:`pending`);
        once attributed it moves the window (:meth:`ChannelMember.advance`)."""
        return False

    def pending(self, kid: int, ctr: int, frame: bytes) -> bool:
        """This frame was heard already and waits for its checkpoint (a replay: dropped)."""
        return self.book.is_pending(kid, ctr, frame)

    def frame(self, ch: str, member: ChannelMember, r: Received, frame: bytes, now: float) -> bool:
        """A voice frame that decrypted: True if it may play (it is not a known forgery)."""
        self._claims[r.kid] = (ch, r.sender, member)
        verdict = self.book.frame(r.kid, r.ctr, frame, now)
        if verdict is Verdict.VERIFIED:
            member.advance(r.kid, r.ctr)
            self._stats["voice_verified"] += 1
            return True
        if verdict is Verdict.FORGED:
            self._alarm(Finding("forged", r.kid, (r.ctr,), "mismatch"))
            return False
        return True

    def checkpoint(self, ch: str, member: ChannelMember, r: Received, now: float) -> None:
        try:
            cp = decode_checkpoint(r.payload)
            cred = member.credential(r.sender)
            if cred is None:
                raise VerificationError(Refusal.UNKNOWN_DEVICE, "checkpoint signer")
            cp.verify(cred)
        except VerificationError:
            self._stats["checkpoints_refused"] += 1
            return
        context, index, ebits = split_kid(cp.kid)
        ok = (context, index, ebits) == (CONTEXT_VOICE, *split_kid(r.kid)[1:])
        if not (ok and cp.kid >> GEN_SHIFT == r.kid >> GEN_SHIFT):
            self._stats["checkpoints_misbound"] += 1  # not the signer's own voice KID
            return
        if cp.channel != ch or cp.commit.hex() != r.commit:
            self._stats["checkpoints_misbound"] += 1
            self._out.emit(ev.BindingRefused(ch, r.sender, "checkpoint", "other-commit"))
            return
        self._claims.setdefault(cp.kid, (ch, r.sender, member))
        self._stats["checkpoints"] += 1
        for finding in self.book.checkpoint(cp, now):
            self._report(finding)

    def get_timer(self) -> float | None:
        return self.book.next_deadline()

    def handle_timer(self, now: float) -> None:
        for finding in self.book.expire(now):
            self._report(finding)

    def _report(self, f: Finding) -> None:
        claim = self._claims.get(f.kid)
        if claim is None:
            return
        ch, sender, member = claim
        if f.kind == "verified":
            for ctr in f.ctrs:
                member.advance(f.kid, ctr)
            self._stats["voice_verified"] += len(f.ctrs)
            self._out.emit(ev.TalkerVerified(ch, sender, f.kid, len(f.ctrs)))
        elif f.kind == "unverifiable":
            self._stats["voice_unverifiable"] += len(f.ctrs)
        else:
            self._alarm(f)

    def _alarm(self, f: Finding) -> None:
        claim = self._claims.get(f.kid)
        if claim is None:
            return
        self._stats["forgery_alarms"] += 1
        self._out.emit(ev.ForgeryAlarm(claim[0], claim[1], f.kid, f.ctrs, f.reason or f.kind))
