"""The channels an endpoint follows: its verified commits, their chain links, and its own commits.

:class:`ChannelBook` is part of the sans-IO :class:`~bridge.endpoint.core.EndpointCore`. A
commit — delivered by the relay, or our own once the relay accepted it — is verified by a
:class:`~bridge.endpoint.output.VerifyJob` that the driver runs off its event loop; the book
hands out one job at a time and changes nothing until :meth:`ChannelBook.done` installs the
result. Each installed commit (or chain link, see :mod:`bridge.endpoint.chain`) is persisted in
:class:`~bridge.endpoint.state.EndpointState` before it is reported, so a restart follows the
same chain. Membership is never taken from the relay: every key comes from a commit this
device verified itself.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.chain import prepare_link
from bridge.endpoint.output import Output, VerifyJob
from bridge.endpoint.state import EndpointState
from bridge.errors import LocalProtocolError, RelayError, StoreError
from bridge.wire.codes import Code
from crypto.agreement import Agreement, RevocationList
from crypto.channel import Commit, CommitBundle, check_expiry, create_commit, latest_expiry
from crypto.errors import CryptoError, Refusal, VerificationError
from crypto.group import ChannelMember, PreparedCommit
from crypto.identity import Credential, DeviceKeys, TrustBundle

log = logging.getLogger("crossband.endpoint")
DEFAULT_LIFETIME = 86400  # seconds a new channel lives unless told otherwise


@dataclass(frozen=True)
class _Context:
    seq: int | None  # the delivery to acknowledge once done
    answer: tuple[Any, ...] | None  # our own commit: who waits for it


def decode_bundle(body: bytes) -> CommitBundle:
    """Decode a commit bundle from the relay; VerificationError(MALFORMED) for anything odd."""
    try:
        return CommitBundle.decode(body)
    except (ValueError, TypeError):  # beyond what the decoder documents
        raise VerificationError(Refusal.MALFORMED, "commit bundle") from None


class ChannelBook:
    def __init__(
        self,
        cred: Credential,
        keys: DeviceKeys,
        trust: TrustBundle,
        state: EndpointState,
        revocations: dict[str, RevocationList],
        out: Output,
    ) -> None:
        self.cred = cred
        self.device = cred.device
        self._keys = keys
        self.trust = trust
        self.state = state
        self.revocations = revocations
        self._out = out
        self.channels: dict[str, ChannelMember] = {}
        self.job: VerifyJob | None = None
        self._context = _Context(None, None)
        self._own: dict[tuple[str, int], CommitBundle] = {}  # sent, awaiting commit-ok

    # -- restore -------------------------------------------------------------------------------

    def restore(self, now: float) -> None:
        """Follow the commits (and links) persisted by an earlier run, oldest first."""
        for ch, epoch, blob, refused in self.state.commits():
            member = self.member_for(ch)
            try:
                bundle = decode_bundle(blob)
                if refused is None:
                    prepared = self._job(bundle, now).run()
                else:  # a link stays a link: never re-verified into keys
                    why = VerificationError(Refusal(refused), "restored link")
                    prepared = prepare_link(member, self.trust, bundle, now, self.revocations, why)
                if not isinstance(prepared, PreparedCommit):
                    raise prepared
                self._installed(member, member.install(prepared, now), prepared)
            except (CryptoError, ValueError, StoreError) as exc:
                log.warning("event=restore-refused channel=%s epoch=%d reason=%s", ch, epoch, exc)

    # -- verification, one job at a time -------------------------------------------------------

    def member_for(self, ch: str) -> ChannelMember:
        member = self.channels.get(ch)
        if member is None:
            member = ChannelMember(self.device, self._keys, self.trust, self.state)
        return member

    def _job(self, bundle: CommitBundle, now: float) -> VerifyJob:
        ch = bundle.commit.channel
        return VerifyJob(ch, bundle, self.member_for(ch), self.trust, now, self.revocations)

    def start(
        self, bundle: CommitBundle, now: float, seq: int | None, answer: tuple[Any, ...] | None
    ) -> bool:
        """Hand out the job that verifies ``bundle``; False if there is nothing to verify
        (a commit we already follow, e.g. our own delivered back to us)."""
        if self.job is not None:
            raise LocalProtocolError(Code.INTERNAL, "a commit is already being verified")
        c = bundle.commit
        member = self.member_for(c.channel)
        last = member.last_commit
        if last is not None and c.epoch <= last.epoch:
            same = c.epoch == last.epoch and hmac.compare_digest(c.hash, last.hash)
            if not (same and member.refused is not None):  # only a link may be replaced
                if answer is not None and same:
                    self._out.answer(answer, last)
                elif answer is not None:
                    self._out.answer(answer, error=RelayError(Code.REBASE, "epoch taken"))
                return False
        self.job = self._job(bundle, now)
        self._context = _Context(seq, answer)
        self._out.jobs.append(self.job)
        return True

    def done(self, job: VerifyJob, result: PreparedCommit | CryptoError, now: float) -> int | None:
        """Install a finished job's result; returns the delivery sequence to acknowledge.

        A verified commit is persisted before it is installed: if the state cannot be written
        the StoreError propagates, nothing changed, and the delivery stays unacknowledged."""
        if job is not self.job:
            raise LocalProtocolError(Code.INTERNAL, "not the commit being verified")
        self.job = None
        ctx, ch, member = self._context, job.channel, job.member
        if isinstance(result, PreparedCommit) and result.previous is not member.last_commit:
            result = VerificationError(Refusal.WRONG_PREVIOUS, "another commit came first")
        if isinstance(result, PreparedCommit):
            refused = result.refused
            try:
                self.state.save_commit(
                    ch,
                    result.commit.epoch,
                    result.bundle.encode(),
                    refused.code.value if refused is not None else None,
                )
            except StoreError as exc:
                if ctx.answer is not None:
                    self._out.answer(ctx.answer, error=exc)
                raise
            self._installed(member, member.install(result, now), result)
            if refused is not None:
                code = refused.code.value
                self._out.emit(ev.Error(code, f"commit on {ch} refused; kept as a chain link"))
            if ctx.answer is not None:
                if refused is None:
                    self._out.answer(ctx.answer, result.commit)
                else:
                    self._out.answer(ctx.answer, error=refused)
            return ctx.seq
        code = result.code.value if isinstance(result, VerificationError) else "undecryptable"
        self._out.emit(ev.Error(code, f"commit on {ch} refused"))
        if ctx.answer is not None:
            self._out.answer(ctx.answer, error=result)
        return ctx.seq

    def _installed(self, member: ChannelMember, commit: Commit, prepared: PreparedCommit) -> None:
        ch = commit.channel
        self.channels[ch] = member
        if prepared.refused is None:
            roster = {e.device: e.role for e in commit.roster}
            self._out.emit(ev.ChannelUpdated(ch, commit.name, commit.epoch, roster, member.removed))
        self._out.answer(("epoch", ch), commit.epoch)

    # -- our own commits -------------------------------------------------------------------------

    def build(
        self,
        ch: str,
        members: list[tuple[Credential, str]],
        agreement: Agreement | None,
        name: str | None,
        expires: int | None,
        now: float,
    ) -> CommitBundle:
        """Our next commit for ``ch`` (epoch 1 if new), remembered until the relay answers.

        Without ``expires`` the channel keeps its current expiry (a new one lives
        :data:`DEFAULT_LIFETIME`), cut to :func:`~crypto.channel.latest_expiry`: a channel
        never outlives its agreement, our credential or a member's. An explicit ``expires``
        beyond that, or not after ``now``, is refused (VerificationError) naming what it
        outlives."""
        member = self.channels.get(ch)
        previous = member.last_commit if member else None
        agreement = agreement or (member.agreement if member else None)
        if agreement is None:
            raise ValueError("a new channel needs an agreement")
        creds = [c for c, _ in members]
        expires = self._expiry(agreement, previous, expires, now, creds)
        bundle, _secret = create_commit(
            issuer=self.cred,
            issuer_keys=self._keys,
            channel=ch,
            name=name or (previous.name if previous else ch),
            agreement=agreement,
            members=members,
            previous=previous,
            expires=expires,
            now=int(now),
        )
        self._own[(ch, bundle.commit.epoch)] = bundle
        return bundle

    def _expiry(
        self,
        agreement: Agreement,
        previous: Commit | None,
        expires: int | None,
        now: float,
        members: list[Credential],
    ) -> int:
        """The ``expires`` of our next commit (see :meth:`build`): never after the agreement,
        our credential or any member's credential ends."""
        if expires is None:
            wanted = previous.expires if previous else int(now) + DEFAULT_LIFETIME
            expires = min(wanted, latest_expiry(agreement, self.cred, members))
        else:
            check_expiry(expires, agreement, self.cred, members)
        if expires <= now:
            raise VerificationError(
                Refusal.EXPIRED,
                f"channel would expire at {expires}, not after now ({int(now)}): "
                f"agreement {agreement.id} ends {agreement.not_after}, "
                f"our credential {self.cred.not_after}",
            )
        return expires

    def accepted(self, ch: str, epoch: int) -> CommitBundle | None:
        """The relay accepted our commit: the bundle to install now (None if not ours)."""
        return self._own.pop((ch, epoch), None)

    def forget(self, ch: str) -> None:
        """The relay refused our pending commits for ``ch``."""
        for key in [k for k in self._own if k[0] == ch]:
            del self._own[key]

    def close(self, ch: str, now: float) -> None:
        """The relay says the channel expired; we stop once its commit says so too."""
        member = self.channels.get(ch)
        c = member.last_commit if member else None
        if c is not None and now >= c.expires:
            self.channels.pop(ch, None)
            roster = {e.device: e.role for e in c.roster}
            self._out.emit(ev.ChannelUpdated(ch, c.name, c.epoch, roster, True))
