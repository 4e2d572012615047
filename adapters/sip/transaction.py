"""SIP transactions over UDP (RFC 3261 §17), sans-IO: retransmission and timeout timers.

Each transaction holds the bytes it last sent and where; :meth:`get_timer` says when it next
needs :meth:`handle_timer`, which returns what to send again and whether it timed out.

* :class:`ClientTransaction` — our request. INVITE: Timer A retransmits it at T1, 2T1, 4T1…
  while nothing was heard, Timer B gives up after 64·T1 (§17.1.1.2). Other methods: Timer E
  retransmits at T1 doubling up to T2, also after a provisional response (then every T2),
  Timer F gives up after 64·T1; after the final response Timer K (T4) absorbs its
  retransmissions (§17.1.2.2).
* :class:`ServerTransaction` — a request we answer. A retransmitted request gets the last
  response again (§17.2.1, §17.2.2). A final response to INVITE is retransmitted by Timer G
  (T1 doubling to T2) until the ACK, up to Timer H (64·T1) — for a 2xx the UAS core does the
  same (§13.3.1.4), so both use this class (``until_ack``). Non-INVITE: Timer J (64·T1)
  keeps the transaction to absorb retransmissions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["T1", "T2", "T4", "ClientTransaction", "ServerTransaction", "TimerResult"]

T1 = 0.5  # seconds: RTT estimate (§17.1.1.1)
T2 = 4.0  # the longest retransmit interval for non-INVITE requests and INVITE responses
T4 = 5.0  # how long a message can stay in the network


@dataclass
class TimerResult:
    resend: bytes | None = None
    timed_out: bool = False
    finished: bool = False


@dataclass
class ClientTransaction:
    """One request we sent (module docstring)."""

    branch: str
    method: str
    data: bytes
    dest: tuple[str, int]
    started: float
    interval: float = T1
    next_send: float | None = None
    deadline: float | None = None  # Timer B / F
    linger_until: float | None = None  # Timer D/K: completed, absorbing retransmissions
    provisional: bool = False
    done: bool = False
    retransmits: int = 0

    def __post_init__(self) -> None:
        self.next_send = self.started + T1
        self.deadline = self.started + 64 * T1

    @property
    def invite(self) -> bool:
        return self.method == "INVITE"

    def get_timer(self) -> float | None:
        times = [t for t in (self.next_send, self.deadline, self.linger_until) if t is not None]
        return min(times) if times and not self.done else None

    def on_response(self, status: int, now: float) -> bool:
        """A response arrived; True if it is the first final one (pass it on)."""
        if self.linger_until is not None or self.done:
            return False  # a retransmitted final response: already handled
        if status < 200:
            self.provisional = True
            if self.invite:
                self.next_send = None  # Timer A stops once a provisional came
            return True
        self.next_send = None
        self.deadline = None
        # Timer K (T4), Timer D (32 s); after a 2xx, 64·T1 to ACK its retransmissions (RFC 6026)
        self.linger_until = now + (T4 if not self.invite else 32.0 if status >= 300 else 64 * T1)
        return True

    def handle_timer(self, now: float) -> TimerResult:
        out = TimerResult()
        if self.done:
            return out
        if self.linger_until is not None:
            if now >= self.linger_until:
                self.done = out.finished = True
            return out
        if self.deadline is not None and now >= self.deadline:
            self.done = out.finished = out.timed_out = True
            return out
        if self.next_send is not None and now >= self.next_send:
            out.resend = self.data
            self.retransmits += 1
            if self.invite:
                self.interval *= 2
            else:
                self.interval = T2 if self.provisional else min(self.interval * 2, T2)
            self.next_send = now + self.interval
        return out


@dataclass
class ServerTransaction:
    """One request we answer (module docstring)."""

    branch: str
    method: str
    dest: tuple[str, int]
    last: bytes | None = None  # the last response sent
    final: int = 0
    until_ack: bool = False
    interval: float = T1
    next_send: float | None = None
    deadline: float | None = None
    acked: bool = False
    done: bool = False
    retransmits: int = 0
    cseq: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def respond(self, status: int, data: bytes, now: float) -> None:
        """Send a response (the caller sends ``data`` now; this keeps it for retransmission)."""
        self.last = data
        if status < 200:
            return
        self.final = status
        if self.method == "INVITE":
            self.until_ack = True
            self.interval = T1
            self.next_send = now + T1  # Timer G, or the 2xx retransmission of §13.3.1.4
            self.deadline = now + 64 * T1  # Timer H
        else:
            self.deadline = now + 64 * T1  # Timer J

    def on_ack(self, now: float) -> None:
        self.acked = True
        self.next_send = None
        self.deadline = now + (T4 if self.final >= 300 else 0.0)  # Timer I

    def on_retransmission(self) -> bytes | None:
        """The request came again: what to send back (the last response, if any)."""
        return self.last

    def get_timer(self) -> float | None:
        if self.done:
            return None
        times = [t for t in (self.next_send, self.deadline) if t is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> TimerResult:
        out = TimerResult()
        if self.done:
            return out
        if self.deadline is not None and now >= self.deadline:
            self.done = out.finished = True
            out.timed_out = self.until_ack and not self.acked  # Timer H: no ACK came
            return out
        if self.next_send is not None and now >= self.next_send and self.last is not None:
            out.resend = self.last
            self.retransmits += 1
            self.interval = min(self.interval * 2, T2)
            self.next_send = now + self.interval
        return out
