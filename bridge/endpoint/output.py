"""What :class:`~bridge.endpoint.core.EndpointCore` hands its driver, gathered in one place.

The core and its parts never do I/O: they append to an :class:`Output`, and the driver drains
it after every call — control messages to send on the relay link (in order), media frames,
application events, answers to pending requests, and commit-verification jobs to run off the
event loop (:class:`VerifyJob`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bridge.endpoint import events as ev
from bridge.endpoint.chain import prepare_link
from bridge.wire import control as p
from crypto.agreement import RevocationList
from crypto.channel import CommitBundle
from crypto.errors import CrossbandError, CryptoError, Refusal, VerificationError
from crypto.group import ChannelMember, PreparedCommit
from crypto.identity import TrustBundle


@dataclass(frozen=True)
class Answer:
    """The outcome of a request, for the driver awaiting it (not an application event).

    Keys: ``("msg", id)`` accepted; ``("rid", rid)`` a directory answer; ``("revocation",
    agency)``; ``("commit", ch, epoch)`` our commit is accepted and installed (``epoch`` None:
    every commit of ``ch`` we wait for failed); ``("epoch", ch)`` the channel reached epoch
    ``value``; ``("floor", ch)`` granted / queued / denied; ``("released", ch)`` the floor
    release went out."""

    key: tuple[Any, ...]
    value: Any = None
    error: CrossbandError | None = None


@dataclass(eq=False)
class VerifyJob:
    """Verify one commit: CPU-heavy and pure, so the driver may :meth:`run` it on a worker
    thread, then give the result to ``EndpointCore.job_done(job, result, now)``.

    The core hands out one job at a time and changes no channel state until it is done."""

    channel: str
    bundle: CommitBundle
    member: ChannelMember
    trust: TrustBundle
    now: float
    revocations: dict[str, RevocationList]

    def run(self) -> PreparedCommit | CryptoError:
        """Never raises for a refused commit: the refusal is the result."""
        try:
            return self.member.prepare_commit(self.bundle, self.now, self.revocations)
        except VerificationError as exc:
            try:
                return prepare_link(
                    self.member, self.trust, self.bundle, self.now, self.revocations, exc
                )
            except VerificationError as refusal:
                return refusal
        except CryptoError as exc:
            return exc
        except ValueError:  # a check below us let one through: refuse
            return VerificationError(Refusal.MALFORMED, "commit could not be checked")


@dataclass
class Output:
    controls: deque[str] = field(default_factory=deque)
    media: list[tuple[int, bytes]] = field(default_factory=list)
    events: list[ev.Event] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    jobs: list[VerifyJob] = field(default_factory=list)

    def send(self, t: str, **fields: Any) -> None:
        self.controls.append(p.control(t, **fields))

    def emit(self, event: ev.Event) -> None:
        self.events.append(event)

    def answer(
        self, key: tuple[Any, ...], value: Any = None, error: CrossbandError | None = None
    ) -> None:
        self.answers.append(Answer(key, value, error))
