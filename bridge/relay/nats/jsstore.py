"""Store-and-forward on JetStream, relay state and floor leases on KV: a ForwardStore for nodes.

Model
-----
* One stream, ``CB_QUEUE``, file storage, R3, subjects ``cb.q.<member>``: an accepted item is
  published once per recipient on that recipient's subject, with ``Nats-Msg-Id`` derived from
  (recipient, message id), so a retried publish (a lost publish-ack, a sender's retry after a
  lost acceptance, two nodes racing) is stored once within the stream's duplicate window.
* A durable *pull consumer per member* (``m-<member>``, filter ``cb.q.<member>``, ack policy
  *all*): its cursor lives in the cluster, not in a node, so when a member moves to another
  node (its node died, the load balancer sent it elsewhere) that node binds the same consumer
  and resumes where the member's cumulative ``ack`` left it. Per node would tie a member's
  position to a node that may be gone; per member costs one consumer per device, which
  JetStream holds by the thousands. Unacknowledged items come back after ``ACK_WAIT``: the
  endpoint drops a duplicate by message id, so delivery stays exactly once to the user.
* The stream's sequence is the item's ``seq``: it grows, it is never reused, and one member's
  items are ordered by it, so the endpoint's cumulative ack means what it means on SQLite.
* Relay state (``put_state``/``get_state``) is the KV bucket ``cb_state``; floor leases are
  ``cb_floor`` (see :mod:`bridge.relay.nats.floor`).

The interface is synchronous (the driver runs it on its store thread) while nats-py is
asyncio: the store runs its own connection on its own event loop thread, and each call waits
for its coroutine there, with a deadline. Anything NATS raises leaves as
:class:`~bridge.errors.StoreError`, so the core answers ``store-failed``, as on SQLite.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import nats
from nats.js import api
from nats.js.errors import KeyNotFoundError

from bridge.errors import StoreError
from bridge.relay.nats import subjects as s
from bridge.relay.nats.items import decode_item, dedup_id, encode_item
from bridge.relay.store import StoredItem, check_enqueue, check_state

__all__ = ["JetStreamStore"]

log = logging.getLogger("crossband.relay.nats")
T = TypeVar("T")

OP_TIMEOUT = 20.0  # seconds a store call may wait (a JetStream leader election stalls 5-8 s)
PUBLISH_TIMEOUT = 2.0  # seconds for one publish-ack before the same publish is retried
ACK_WAIT = 2.0  # seconds before an unacknowledged item is offered again (to another node)
PULL_WAIT = 1.0  # seconds one fetch waits for new items
BATCH = 64


class JetStreamStore:
    """The :class:`~bridge.relay.store.ForwardStore` of a relay node (see the module doc)."""

    def __init__(self, urls: list[str], node: str, replicas: int = 3, ttl: float = 7 * 86400):
        self.node, self.replicas, self.ttl = node, replicas, ttl
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats-store")
        self._thread.daemon = True
        self._thread.start()
        self._lock = threading.Lock()
        self._unacked: dict[str, dict[int, Any]] = {}  # recipient -> stream seq -> its Msg
        self._pumps: dict[str, concurrent.futures.Future[None]] = {}
        try:
            self._call(self._connect(urls))
        except BaseException:
            self._stop_loop()
            raise

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = OP_TIMEOUT) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise StoreError("store unavailable: NATS did not answer in time") from None
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"store unavailable: {type(exc).__name__}") from exc

    async def _connect(self, urls: list[str]) -> None:
        self.nc = await nats.connect(
            servers=urls,
            name=f"crossband-{self.node}-store",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=5,
        )
        self.js = self.nc.jetstream(timeout=PUBLISH_TIMEOUT)
        config = api.StreamConfig(
            name=s.QUEUE_STREAM,
            subjects=[s.QUEUE_SUBJECTS],
            storage=api.StorageType.FILE,
            num_replicas=self.replicas,
            max_age=self.ttl,
            duplicate_window=120.0,
        )
        try:
            await self.js.stream_info(s.QUEUE_STREAM)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(config)
        self.state = await self._bucket(s.STATE_BUCKET)
        self.floor = await self._bucket(s.FLOOR_BUCKET)

    async def _bucket(self, name: str) -> Any:
        try:
            return await self.js.key_value(name)
        except nats.js.errors.BucketNotFoundError:
            cfg = api.KeyValueConfig(bucket=name, history=1, replicas=self.replicas)
            return await self.js.create_key_value(cfg)

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> int:
        """Publish until acknowledged (the same id: a retry is not stored twice)."""
        deadline = self._loop.time() + OP_TIMEOUT - 1
        while True:
            try:
                ack = await self.js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
                return int(ack.seq)
            except Exception as exc:  # no ack, no responders, a node gone: the election
                if self._loop.time() > deadline:  # of a new leader takes seconds; retry
                    raise
                log.info("event=publish-retry error=%s", type(exc).__name__)
                await asyncio.sleep(0.2)

    # -- ForwardStore --------------------------------------------------------------------------

    def enqueue(
        self,
        recipients: list[str],
        channel: str,
        kind: str,
        msg_id: str,
        body: bytes,
        now: float,
        ttl: float,
        state: Mapping[str, bytes] | None = None,
    ) -> int:
        targets = check_enqueue(recipients, channel, kind, msg_id, body, now, ttl)
        states = check_state(state)
        payload = encode_item(channel, kind, msg_id, now, now + ttl, body)

        async def run() -> int:
            seqs = await asyncio.gather(
                *(self._publish(s.queue_subject(r), payload, dedup_id(r, msg_id)) for r in targets)
            )
            for key, value in states:  # after the items: a head is never ahead of its commit
                await self.state.put(s.state_key(key), value)
            return max(seqs)

        return self._call(run())

    def pending(
        self, recipient: str, now: float, after_seq: int = 0, limit: int = 500
    ) -> list[StoredItem]:
        """Nothing here: a member's items reach it through its consumer (:meth:`start_pump`)."""
        return []

    def ack(self, recipient: str, up_to_seq: int) -> int:
        with self._lock:
            held = self._unacked.get(recipient, {})
            done = sorted(q for q in held if q <= up_to_seq)
            last = held.get(done[-1]) if done else None
        if last is None:
            return 0
        self._call(last.ack_sync(timeout=PUBLISH_TIMEOUT))  # ack policy all: every one before
        with self._lock:
            for q in done:
                held.pop(q, None)
        return len(done)

    def expire(self, now: float) -> int:
        return 0  # the stream's max_age drops what expired

    def depth(self, recipient: str | None = None) -> int:
        with self._lock:
            if recipient is not None:
                return len(self._unacked.get(recipient, {}))
            return sum(len(v) for v in self._unacked.values())

    def put_state(self, key: str, value: bytes) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError("key must be a non-empty string")
        self._call(self.state.put(s.state_key(key), bytes(value)))

    def get_state(self, key: str) -> bytes | None:
        async def run() -> bytes | None:
            try:
                entry = await self.state.get(s.state_key(key))
            except KeyNotFoundError:
                return None
            return bytes(entry.value) if entry.value is not None else None

        return self._call(run())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one coroutine on the store's loop (for the floor ops), with the deadline."""
        return self._call(coro)

    # -- the member consumers ------------------------------------------------------------------

    def start_pump(self, recipient: str, deliver: Callable[[StoredItem], None]) -> None:
        """Deliver ``recipient``'s items, in order, to ``deliver`` (called on the store's loop
        thread; it must hand them over thread-safely) until :meth:`stop_pump`."""
        self.stop_pump(recipient)
        fut = asyncio.run_coroutine_threadsafe(self._pump(recipient, deliver), self._loop)
        self._pumps[recipient] = fut

    def stop_pump(self, recipient: str) -> None:
        fut = self._pumps.pop(recipient, None)
        if fut is not None:
            fut.cancel()

    async def _bind(self, recipient: str) -> Any:
        """The member's consumer, made afresh from its ack floor, and a pull subscription.

        A consumer delivers new items before it redelivers the ones another node handed out
        and never saw acknowledged; with ack policy *all*, the member's next cumulative ack
        would then acknowledge those unseen. So at each login the consumer is replaced by one
        that starts just after the member's last acknowledged item: in order, nothing skipped.
        """
        name, stream = s.consumer_name(recipient), s.QUEUE_STREAM
        start: int | None = None
        try:
            info = await self.js.consumer_info(stream, name)
            floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
            start = floor + 1 if floor else None
            await self.js.delete_consumer(stream, name)
        except nats.js.errors.NotFoundError:
            pass
        with self._lock:
            self._unacked.pop(recipient, None)  # handed out by the consumer just replaced
        config = api.ConsumerConfig(
            durable_name=name,
            filter_subject=s.queue_subject(recipient),
            ack_policy=api.AckPolicy.ALL,
            deliver_policy=api.DeliverPolicy.ALL
            if start is None
            else api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_wait=ACK_WAIT,
            max_ack_pending=10_000,
        )
        await self.js.add_consumer(stream, config)
        return await self.js.pull_subscribe_bind(durable=name, stream=stream)

    async def _pump(self, recipient: str, deliver: Callable[[StoredItem], None]) -> None:
        sub = None
        try:
            while True:
                try:
                    if sub is None:
                        sub = await self._bind(recipient)
                    msgs = await sub.fetch(BATCH, timeout=PULL_WAIT)
                except nats.errors.TimeoutError:
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a NATS node went away: the client reconnects;
                    # never re-made here: only a login replaces the consumer
                    log.info("event=pump-retry error=%s", type(exc).__name__)
                    await asyncio.sleep(0.3)
                    continue
                for msg in msgs:
                    seq = int(msg.metadata.sequence.stream)
                    with self._lock:
                        self._unacked.setdefault(recipient, {})[seq] = msg
                    deliver(decode_item(seq, recipient, msg.data))
        finally:
            if sub is not None:
                await sub.unsubscribe()

    # -- life cycle ----------------------------------------------------------------------------

    def close(self) -> None:
        for recipient in list(self._pumps):
            self.stop_pump(recipient)
        if self._thread.is_alive():
            try:
                self._call(self.nc.drain(), timeout=5)
            except StoreError:
                pass
        self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
