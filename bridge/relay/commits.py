"""Commits: the first valid commit for epoch N+1 wins; channels tear themselves down at expiry.

A commit is verified exactly as a member would, without any key; a later one for an epoch the
relay already has (or is writing) is told to rebase. The accepted bundle (sealed secrets
included, each readable only by its member) is stored for every member of the old and new
rosters, together with the channel's new head, in one store transaction; only when that
write succeeded does the relay install the head, announce it and answer ``commit-ok``. A
failed write is answered ``store-failed`` and changes nothing.

Cheap checks come first, before a (up to 4 MB) bundle is decoded. Its size was charged to
the sender's rate limit before it was even parsed (``RelayCore.admit``); the sender must hold
the dispatcher role; the message must name its channel and epoch (``ch``, ``epoch``, checked
against the bundle once decoded), so that, all without decoding, a stale epoch is told to
rebase, and for an existing channel a sender the current head does not list, or whose agency
its agreement does not allow to dispatch, is refused (only a member of the previous roster
may issue the next commit: :func:`crypto.channel.verify_commit`).
"""

from __future__ import annotations

import json
import os
from typing import Any

from bridge.errors import RemoteProtocolError
from bridge.relay.base import CoreBase, deliver_msg, safe_rid
from bridge.relay.jobs import Enqueue, Job, PutStates, Refused, VerifyCommit
from bridge.relay.state import Channel, Outcome, Session
from bridge.wire import control as p
from crypto.agreement import Agreement
from crypto.channel import Commit, CommitBundle

MIN_COMMIT_TTL = 60.0


class CommitsMixin(CoreBase):
    def _refuse_commit(
        self, s: Session, code: str, detail: str, rid: str | None, ch: Any, epoch: Any
    ) -> Outcome:
        return Outcome([(s.id, p.error(code, detail, rid=rid, ch=ch, epoch=epoch))])

    def _on_commit(self, s: Session, msg: dict[str, Any], now: float, wall: float) -> Outcome:
        rid = safe_rid(msg)
        raw, ch, epoch = msg["bundle"], msg["ch"], msg["epoch"]  # types checked by the parser
        if len(raw) > p.MAX_CONTROL:
            raise RemoteProtocolError(p.Codes.TOO_LARGE)
        assert s.cred is not None and s.device is not None
        if not s.cred.has_role("dispatcher"):
            return self._refuse_commit(s, p.Codes.COMMIT_REFUSED, "not-dispatcher", rid, ch, epoch)
        self._require_audit()
        early = self._check_hints(s, rid, ch, epoch)
        if early is not None:
            return early
        chan = self.channels.get(ch)
        previous = chan.head if chan is not None else None
        revocations = tuple(self.revocations.items())
        op = VerifyCommit(raw, s.device, self.trust, wall, previous, revocations)

        def verified(result: CommitBundle | Refused, now: float) -> Outcome:
            return self._verified(s, rid, ch, epoch, previous, result, wall)

        def broken(now: float) -> Outcome:  # a bug in verification, not the store's fault
            return Outcome([(s.id, p.error(p.Codes.INTERNAL, "commit not checked", rid=rid))])

        return Outcome(jobs=[Job(op, verified, broken)])

    def _verified(
        self,
        s: Session,
        rid: str | None,
        ch: str,
        epoch: int,
        previous: Commit | None,
        result: CommitBundle | Refused,
        wall: float,
    ) -> Outcome:
        """The verdict came back from the verifying thread (the loop ran meanwhile)."""
        if isinstance(result, Refused) and not result.decoded:
            return self._malformed(s, rid, f"commit: {result.error.code.value}")
        bundle = result if isinstance(result, CommitBundle) else result.bundle
        assert bundle is not None
        c = bundle.commit
        if (c.channel, c.epoch) != (ch, epoch):
            return self._malformed(s, rid, "ch/epoch do not match the bundle")
        if c.issuer != s.device:
            self.metrics.c["protocol_errors"] += 1
            detail = "commit issuer is not this device"
            return Outcome([(s.id, p.error(p.Codes.NOT_PERMITTED, detail, rid=rid))])
        chan = self.channels.get(c.channel)
        stale = self._taken_epoch(c.channel)
        if stale is not None and c.epoch <= stale:
            return self._rebase(s, rid, c.channel, c.epoch, stale, wall)
        if (chan.head if chan is not None else None) is not previous:
            # The channel moved on while this one was being verified (against the old head).
            taken = chan.head.epoch if chan is not None else 0
            return self._rebase(s, rid, c.channel, c.epoch, taken, wall)
        if isinstance(result, Refused):
            self._audit(
                "commit-refused",
                wall,
                channel=c.channel,
                epoch=c.epoch,
                issuer=s.device,
                reason=result.error.code.value,
            )
            code, reason = p.Codes.COMMIT_REFUSED, result.error.code.value
            return self._refuse_commit(s, code, reason, rid, c.channel, c.epoch)
        if chan is None and c.epoch != 1:
            detail = "unknown channel must start at epoch 1"
            return self._refuse_commit(s, p.Codes.COMMIT_REFUSED, detail, rid, c.channel, c.epoch)
        return self._store_commit(s, bundle, rid, wall)

    def _malformed(self, s: Session, rid: str | None, detail: str) -> Outcome:
        self.metrics.c["protocol_errors"] += 1
        return Outcome([(s.id, p.error(p.Codes.MALFORMED, detail, rid=rid))])

    def _taken_epoch(self, channel: str) -> int | None:
        """The highest epoch of ``channel`` the relay holds or is writing."""
        chan = self.channels.get(channel)
        head = chan.head.epoch if chan is not None else None
        writing = self.committing.get(channel)
        if writing is None:
            return head
        return writing if head is None else max(head, writing)

    def _check_hints(self, s: Session, rid: str | None, ch: str, epoch: int) -> Outcome | None:
        taken = self._taken_epoch(ch)
        if taken is not None and epoch <= taken:
            return self._rebase(s, rid, ch, epoch, taken, None)
        chan = self.channels.get(ch)
        assert s.cred is not None
        if chan is None:
            return None
        if s.device not in chan.members:
            return self._refuse_commit(s, p.Codes.COMMIT_REFUSED, "not-a-member", rid, ch, epoch)
        if chan.agreement is not None and not chan.agreement.allows(s.cred.agency, "dispatcher"):
            return self._refuse_commit(s, p.Codes.COMMIT_REFUSED, "not-dispatcher", rid, ch, epoch)
        return None

    def _rebase(
        self, s: Session, rid: str | None, ch: str, epoch: int, taken: int, wall: float | None
    ) -> Outcome:
        if wall is not None:
            self._audit("commit-rebase", wall, channel=ch, epoch=epoch, issuer=s.device)
        message = p.error(p.Codes.REBASE, "epoch already taken", ch=ch, epoch=taken, rid=rid)
        return Outcome([(s.id, message)])

    def _store_commit(
        self, s: Session, bundle: CommitBundle, rid: str | None, wall: float
    ) -> Outcome:
        c = bundle.commit
        chan = self.channels.get(c.channel)
        old_members = chan.members if chan else frozenset()
        new_members = frozenset(e.device for e in c.roster)
        recipients = tuple(sorted(old_members | new_members))
        self.committing[c.channel] = c.epoch
        self.listed.add(c.channel)
        state = (
            (f"channel:{c.channel}", bundle.without_secrets().encode()),
            ("channels", json.dumps(sorted(self.listed)).encode()),
        )
        body = bundle.encode()
        op = Enqueue(
            recipients,
            c.channel,
            "commit",
            f"commit/{c.channel}/{c.epoch}",
            body,
            wall,
            max(MIN_COMMIT_TTL, c.expires - wall),
            state,
        )

        def accepted(seq: int, now: float) -> Outcome:
            self.committing.pop(c.channel, None)
            out = self._accept_commit(s, bundle, old_members, now, wall)
            out.sends.append((s.id, p.control("commit-ok", ch=c.channel, epoch=c.epoch, rid=rid)))
            self._deliver(
                out, recipients, seq, deliver_msg(seq, "commit", c.channel, op.msg_id, body)
            )
            return out

        def failed(_now: float) -> Outcome:
            self.committing.pop(c.channel, None)
            if c.channel not in self.channels:
                self.listed.discard(c.channel)
            code = p.Codes.STORE_FAILED
            return self._refuse_commit(s, code, "commit not stored", rid, c.channel, c.epoch)

        return Outcome(jobs=[Job(op, accepted, failed)])

    def _accept_commit(
        self,
        s: Session,
        bundle: CommitBundle,
        old_members: frozenset[str],
        now: float,
        wall: float,
    ) -> Outcome:
        """The commit is on disk: install it, tell the floor and the members."""
        c = bundle.commit
        chan = self._install(c, bundle.agreement)
        self.metrics.c["commits_accepted"] += 1
        self._audit(
            "commit",
            wall,
            channel=c.channel,
            epoch=c.epoch,
            issuer=s.device,
            members=len(c.roster),
            hash=c.hash,
        )
        out = Outcome()
        for gone in old_members - chan.members:  # a removed member loses the floor at once
            out.extend(self._floor_events(chan, chan.floor.cancel(gone, now), wall))
        announce = p.control("channel", ch=chan.id, no=chan.no, epoch=c.epoch)
        for other in self._online(chan.members):
            out.sends.append((other.id, announce))
            if other.device not in old_members:
                out.sends.append((other.id, self._floor_state(chan)))
        return out

    def _install(self, commit: Commit, agreement: Agreement | None = None) -> Channel:
        chan = self.channels.get(commit.channel)
        if chan is None:
            no = int.from_bytes(os.urandom(4), "big") or 1
            while no in self.by_no:
                no = int.from_bytes(os.urandom(4), "big") or 1
            chan = Channel(commit.channel, no, commit, self._new_floor(self.config))
            self.channels[commit.channel] = chan
            self.by_no[no] = chan
        chan.install(commit, agreement)
        return chan

    def _tear_down(self, expired: list[Channel], wall: float) -> Outcome:
        """Channels tear themselves down at their expiry: no more routing, members told."""
        out = Outcome()
        for chan in expired:
            del self.channels[chan.id]
            del self.by_no[chan.no]
            self.listed.discard(chan.id)
            closed = p.control(
                "channel-closed", ch=chan.id, epoch=chan.head.epoch, reason="expired"
            )
            out.sends += [(other.id, closed) for other in self._online(chan.members)]
            self._audit("channel-expired", wall, channel=chan.id, epoch=chan.head.epoch)
        # An expired channel stays expired after a restart even if this write fails: the
        # restored head is past its expiry and is torn down again at the first timer.
        items = [("channels", json.dumps(sorted(self.listed)).encode())]
        items += [(f"channel:{chan.id}", b"") for chan in expired]
        out.jobs.append(Job(PutStates(tuple(items))))
        return out
