"""Redis Streams bus: publish, consume with consumer groups, ack after success, reclaim, dead-letter.

Guarantees (at-least-once delivery, effects made exactly-once by ledgers):

* ``publish``/``publish_many`` — ``XADD MAXLEN ~``; a batch is one ``MULTI``/``EXEC``: all of it
  or none of it lands, so a retry can never put its tail before its head (see :meth:`Bus.publish_many`).
* ``publish_once`` — atomic ``HSETNX ledger field`` + ``XADD`` in one Lua script:
  a redelivered input never yields a second output.
* ``consume`` — consumer group created on first use; ``XREADGROUP COUNT/BLOCK``;
  this consumer's own pending entries are re-read after a restart; entries are
  acked only after the handler returned; malformed entries go to
  ``stream:deadletter`` with the reason, source stream and raw fields (and are
  acked — nothing is lost, nothing blocks the stream); a failing handler is
  retried entry by entry, and an entry delivered more than ``max_deliveries``
  times is dead-lettered; entries of dead consumers idle for ``min_idle_ms`` are
  reclaimed with ``XAUTOCLAIM``; Redis going away is retried with backoff.
* ``consume(window=...)`` — the same loop for a stage that decides over a time window (the
  router's best-of-N): arrivals are screened by ``window.admit``, the admitted ones wait
  (unacked) until ``window.due_in_ms`` says the batch is due, then the handler gets them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar

import redis.asyncio as aredis
from redis.client import NEVER_DECODE
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from quantum_trader.core import consumers as cons
from quantum_trader.core import metrics
from quantum_trader.core.connection import CLUSTER_TRANSIENT, ClusterOnce, is_cluster_client
from quantum_trader.core.keys import Keys
from quantum_trader.core.logs import EventLog
from quantum_trader.core.messages import DeadLetter, Message, MessageError, raw_for_deadletter

M = TypeVar("M", bound=Message)

DEFAULT_MAXLEN: Final = 100_000
_TRANSIENT: Final = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, *CLUSTER_TRANSIENT)

KEEPALIVE_STOP_S: Final = 5.0  # a stopping consumer waits at most this long for its liveness task


async def _cancel_and_wait(task: asyncio.Task[None], *, timeout_s: float) -> None:
    """Cancel ``task`` and wait for it to end, at most ``timeout_s`` (a task that swallowed its cancel
    is left behind rather than blocking the caller's shutdown)."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    for t in done:
        if not t.cancelled():
            t.exception()  # retrieved: an error of a cancelled helper is not worth a warning at exit


_PUBLISH_ONCE: Final = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  local args = {KEYS[2], 'MAXLEN', '~', ARGV[3], '*'}
  for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
  return redis.call('XADD', unpack(args))
end
return false
"""

# Remove a consumer from its group only if it has no pending entry (atomic: nothing can be
# delivered to it between the check and the removal, so no pending entry is ever dropped).
_REMOVE_IF_EMPTY: Final = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""
_HOST: Final = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Entry:
    """A raw stream entry, read without decoding (any bytes a writer put there).

    ``fields`` is None when the entry was trimmed before it was read. Parse it with
    ``M.from_fields(entry.fields)`` (strict: invalid UTF-8 is a :class:`MessageError`).
    """

    id: str
    fields: dict[bytes, bytes] | None
    deliveries: int = 1


@dataclass(frozen=True, slots=True)
class Parsed(Generic[M]):
    id: str
    message: M
    deliveries: int


Handler = Callable[[list[Parsed[M]]], Awaitable[None]]


class Window(Protocol[M]):
    """A stage that decides over a time window (``Bus.consume(window=...)``; the router's batch).

    Arrivals are screened by :meth:`admit`; the ones it keeps wait, unacked (a crash redelivers
    them), until :meth:`due_in_ms` returns 0; then the handler gets every waiting entry at once,
    with the loop's usual failure handling (retries, dead-lettering after ``max_deliveries``).
    """

    def now_ms(self) -> int:
        """The window's clock (ms); the loop notes when the first waiting entry arrived."""
        ...

    async def admit(self, arrivals: list[Parsed[M]]) -> set[str]:
        """Screen arrivals; return the ids that wait for the batch (the others are done and acked)."""
        ...

    def due_in_ms(self, *, waiting: int, oldest_ms: int) -> int:
        """0 when the waiting batch is due, else how long (wall ms) a read may block meanwhile."""
        ...

    def decide_on_stop(self) -> bool:
        """On stop: True hands the waiting entries to the handler; False leaves them pending."""
        ...


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw_fields(fields: Any) -> dict[bytes, bytes]:
    """A reply's field list (``[k1, v1, k2, v2, ...]``) or dict as ``dict[bytes, bytes]``."""
    pairs = fields.items() if isinstance(fields, dict) else zip(fields[::2], fields[1::2], strict=True)
    return {k if isinstance(k, bytes) else str(k).encode(): v if isinstance(v, bytes) else str(v).encode()
            for k, v in pairs}


def _entries(raw: Sequence[Any]) -> list[Entry]:
    out: list[Entry] = []
    for item in raw or ():
        entry_id, fields = item[0], item[1]
        if entry_id is None:
            continue
        out.append(Entry(_s(entry_id), _raw_fields(fields) if fields else None))
    return out


def redis_auth_from_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Redis credentials for a client, from the environment — never from a command line.

    ``REDIS_PASSWORD_FILE`` (a mounted Secret; trailing newline stripped) wins over
    ``REDIS_PASSWORD``; ``REDIS_USERNAME`` names an ACL user. A password inside
    ``REDIS_URL`` still wins over both (redis-py lets the URL override). An unreadable
    file raises ``OSError`` naming the path, never the content.
    """
    env = os.environ if env is None else env
    out: dict[str, str] = {}
    path = env.get("REDIS_PASSWORD_FILE", "")
    if path:
        with open(path, encoding="utf-8") as fh:
            out["password"] = fh.read().rstrip("\r\n")
    elif env.get("REDIS_PASSWORD"):
        out["password"] = env["REDIS_PASSWORD"]
    if env.get("REDIS_USERNAME"):
        out["username"] = env["REDIS_USERNAME"]
    return out


def redis_auth_kwargs() -> dict[str, Any]:
    """:func:`redis_auth_from_env` as keyword arguments for any redis-py client (``from_url(url, **...)``)."""
    return dict(redis_auth_from_env())


def raw_command(target: Any, *args: Any) -> Any:
    """``execute_command`` whose reply is never decoded (a client or a pipeline; awaitable for a client).

    A ``decode_responses=True`` client decodes every reply as UTF-8 inside the protocol parser,
    so one non-UTF-8 byte in a stream entry would raise before any validation could see it.
    """
    return target.execute_command(*args, **{NEVER_DECODE: []})


def _pending_elsewhere(summary: Any, consumer: str) -> bool:
    """From an undecoded ``XPENDING key group`` summary: does a consumer other than ours hold entries?"""
    rows = summary[3] if isinstance(summary, list | tuple) and len(summary) > 3 else None
    me = consumer.encode()
    return any(row[0] not in (me, consumer) and int(row[1]) > 0 for row in rows or ())


def _stream_rows(resp: Any) -> list[Any]:
    """The entry rows of a single-stream XREAD/XREADGROUP reply (RESP2 list or RESP3 dict)."""
    if not resp:
        return []
    if isinstance(resp, dict):  # RESP3: {stream: [[id, fields], ...]}
        return list(next(iter(resp.values())))
    return list(resp[0][1])  # RESP2: [[stream, [[id, fields], ...]]]


class Bus:
    """The profile's event bus over one ``redis.asyncio.Redis`` client."""

    def __init__(
        self,
        client: aredis.Redis,
        *,
        keys: Keys,
        maxlen: int = DEFAULT_MAXLEN,
        worker: str = "",
        log: EventLog | None = None,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._maxlen = maxlen
        self._worker = worker or "bus"
        self._log = log or EventLog(worker=self._worker, profile=keys.profile)
        self._publish_once = client.register_script(_PUBLISH_ONCE)
        self._remove_if_empty = client.register_script(_REMOVE_IF_EMPTY)
        # on a Redis Cluster, the delivering commands go to the node of their slot (MOVED/ASK followed)
        self._cluster_once = ClusterOnce(client) if is_cluster_client(client) else None

    @property
    def redis(self) -> aredis.Redis:
        return self._redis

    @property
    def keys(self) -> Keys:
        return self._keys

    # -- resilience ----------------------------------------------------------------------------
    async def retry(
        self,
        op: Callable[[], Awaitable[Any]],
        *,
        what: str,
        stop: asyncio.Event | None = None,
        give_up_after_s: float = 60.0,
    ) -> Any:
        """Run ``op``; on a connection error wait with exponential backoff and try again.

        Gives up (re-raises) after ``give_up_after_s`` unless a ``stop`` event is given, in
        which case it retries until stopped (then raises ``asyncio.CancelledError``).
        """
        attempt = 0
        started = time.monotonic()
        while True:
            try:
                result = await op()
                if attempt:
                    self._log.event("REDIS_RECONNECTED", op=what, attempts=attempt)
                    metrics.BUS_RECONNECTS.labels(self._keys.profile, self._worker).inc()
                return result
            except _TRANSIENT as exc:
                attempt += 1
                if stop is None and time.monotonic() - started > give_up_after_s:
                    raise
                if stop is not None and stop.is_set():
                    raise asyncio.CancelledError from exc
                delay = min(2.0, 0.05 * 2 ** min(attempt, 6)) * (0.5 + random.random())
                if attempt == 1 or attempt % 20 == 0:
                    self._log.warn("REDIS_UNAVAILABLE", op=what, attempt=attempt, error=type(exc).__name__,
                                   retry_in_s=round(delay, 3))
                if stop is not None:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                    except TimeoutError:
                        pass
                else:
                    await asyncio.sleep(delay)

    # -- publishing ----------------------------------------------------------------------------
    async def publish(self, stream: str, message: Message) -> str:
        entry_id = await self.retry(
            lambda: self._redis.xadd(stream, message.to_fields(), maxlen=self._maxlen, approximate=True),  # type: ignore[arg-type]
            what="xadd",
        )
        metrics.BUS_PUBLISHED.labels(self._keys.profile, _short(stream)).inc()
        return _s(entry_id)

    async def publish_many(self, items: Sequence[tuple[str, Message]]) -> list[str]:
        """Publish several messages in one round trip, all or none, in the order given.

        One ``MULTI``/``EXEC``, not a plain pipeline: a pipeline that reaches a Redis still loading
        its data after a restart has its first commands refused (``LOADING``) and the rest applied
        once loading ends; resent whole by the retry, the stream would then hold the batch's tail
        before its head (later entries of a symbol before earlier ones: decided out of order
        downstream) and the tail twice. ``MULTI`` and ``EXEC`` are accepted while loading; a refused
        command inside aborts the whole transaction, so a retry starts from nothing.
        """
        if not items:
            return []

        async def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            for stream, message in items:
                pipe.xadd(stream, message.to_fields(), maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
            return list(await pipe.execute())

        ids = await self.retry(run, what="xadd_pipeline")
        for stream, _ in items:
            metrics.BUS_PUBLISHED.labels(self._keys.profile, _short(stream)).inc()
        return [_s(i) for i in ids]

    async def publish_once(
        self, stream: str, message: Message, *, ledger: str, ledger_field: str, ledger_value: str = "1"
    ) -> bool:
        """Atomically record ``ledger_field`` in hash ``ledger`` and publish, unless already recorded.

        Returns True when published, False when the ledger already had the field.
        """
        results = await self.publish_once_many([(stream, message, ledger, ledger_field, ledger_value)])
        return results[0]

    async def publish_once_many(self, items: Sequence[tuple[str, Message, str, str, str]]) -> list[bool]:
        """Many :meth:`publish_once` calls (stream, message, ledger, field, value) in one ``MULTI``/``EXEC``.

        All or none, for the reason :meth:`publish_many` gives: the ledger alone would stop the
        duplicates of a partly applied batch, not the reordering (its tail published first).
        """
        if not items:
            return []

        async def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            for stream, message, ledger, field, value in items:
                argv: list[str] = [field, value, str(self._maxlen)]
                for k, v in message.to_fields().items():
                    argv.extend((k, v))
                await self._publish_once(keys=[ledger, stream], args=argv, client=pipe)
            return list(await pipe.execute())

        async def run_loaded() -> list[Any]:
            try:
                return await run()
            except NoScriptError:  # a cluster pipeline does not load scripts (a new master has none)
                await self._redis.script_load(_PUBLISH_ONCE)
                return await run()

        raw = await self.retry(run_loaded, what="publish_once")
        out = [bool(r) for r in raw]
        for (stream, *_), ok in zip(items, out, strict=True):
            if ok:
                metrics.BUS_PUBLISHED.labels(self._keys.profile, _short(stream)).inc()
        return out

    async def deadletter(
        self, *, source_stream: str, entry: Entry, reason: str, group: str = "", code: str = "",
        consumer: str = "", ack: bool = False,
    ) -> None:
        """Move ``entry`` to ``stream:deadletter`` with its reason (``code`` labels the metric).

        The raw fields are kept: UTF-8 text as is, anything else base64 (named in ``raw_base64``).
        ``ack``: acknowledge the entry in ``group`` in the same ``MULTI`` — a crash can then never
        leave it pending to be dead-lettered a second time by whoever claims it.
        """
        code = code or _reason_code(reason)
        raw, encoded = raw_for_deadletter(entry.fields or {})
        letter = DeadLetter(
            ts=int(time.time() * 1000),
            reason=reason,
            source_stream=source_stream,
            source_id=entry.id,
            group=group,
            raw=raw,
            raw_base64=encoded,
            code=code,
            consumer=consumer,
        )
        if ack and group:
            fields = letter.to_fields()

            async def move() -> None:
                pipe = self._redis.pipeline(transaction=True)
                pipe.xadd(self._keys.deadletter, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
                pipe.xack(source_stream, group, entry.id)
                await pipe.execute()

            await self.retry(move, what="deadletter")
            metrics.BUS_PUBLISHED.labels(self._keys.profile, _short(self._keys.deadletter)).inc()
        else:
            await self.publish(self._keys.deadletter, letter)
        metrics.BUS_DEADLETTER.labels(self._keys.profile, _short(source_stream), code).inc()
        self._log.warn("DEADLETTER", stream=_short(source_stream), id=entry.id, group=group, code=code,
                       reason=reason)

    # -- consuming -----------------------------------------------------------------------------
    async def ensure_group(self, stream: str, group: str, *, start_id: str = "0") -> None:
        """Create the consumer group (and the stream) if missing."""
        try:
            await self._redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def once(self, *commands: Sequence[Any]) -> list[Any]:
        """Send ``commands`` in one round trip on one pooled connection; raw replies, no client retry.

        redis-py silently re-sends a command whose connection broke; for commands that *deliver*
        entries (XREADGROUP, XCLAIM, XAUTOCLAIM) that would hand the lost reply's entries to our
        pending list unseen and read past them. Here the error reaches the consume loop instead,
        which then re-reads its pending list first. A Redis error reply raises ``ResponseError``.
        """
        if self._cluster_once is not None:  # the node serving the commands' slot; MOVED/ASK followed
            replies = await self._cluster_once(commands)
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
            return replies
        pool: Any = self._redis.connection_pool
        conn: Any = await pool.get_connection()
        try:
            await conn.send_packed_command(conn.pack_commands([tuple(c) for c in commands]))
            replies = [await conn.read_response(disable_decoding=True) for _ in commands]
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise reply
        return replies

    async def read(
        self, stream: str, group: str, consumer: str, *, count: int = 100, block_ms: int | None = 1000,
        pending: bool = False, ack_first: Sequence[str] = (),
    ) -> list[Entry]:
        """New entries (``>``), or with ``pending=True`` this consumer's own pending entries.

        ``ack_first``: ids to XACK in the same round trip, before the read (the previous
        batch's acks ride along with the next read instead of costing a round trip of their own).
        """
        entries, _ = await self._read(stream, group, consumer, count=count, block_ms=block_ms, pending=pending,
                                      ack_first=ack_first, summary=False)
        return entries

    async def read_new(
        self, stream: str, group: str, consumer: str, *, count: int = 100, block_ms: int | None = 1000,
        ack_first: Sequence[str] = (),
    ) -> tuple[list[Entry], bool]:
        """New entries (``>``), and whether another consumer of the group holds pending entries.

        The second part is an ``XPENDING`` summary sent in the same round trip, which Redis runs
        right after the read returns: every entry older than the ones just read was delivered
        before them, so at that moment it is acked, ours, or pending at a consumer this summary
        names. False therefore proves that nothing earlier waits elsewhere — whoever joined the
        group since we last looked (a new replica, a starved one back from a stall) included.
        """
        return await self._read(stream, group, consumer, count=count, block_ms=block_ms, pending=False,
                                ack_first=ack_first, summary=True)

    async def _read(
        self, stream: str, group: str, consumer: str, *, count: int, block_ms: int | None, pending: bool,
        ack_first: Sequence[str], summary: bool,
    ) -> tuple[list[Entry], bool]:
        args: list[Any] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if not pending and block_ms is not None:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", stream, "0" if pending else ">"]
        # undecoded (a non-UTF-8 field cannot break the client's decoding) and never retried by the
        # client: a reply lost with the connection raises, so the caller re-reads its pending list
        commands: list[Sequence[Any]] = [["XACK", stream, group, *ack_first]] if ack_first else []
        commands.append(args)
        if summary:
            commands.append(["XPENDING", stream, group])
        replies = await self.once(*commands)
        entries = _entries(_stream_rows(replies[1 if ack_first else 0]))
        if pending and entries:
            entries = await self._with_deliveries(stream, group, entries, consumer=consumer)
        return entries, summary and _pending_elsewhere(replies[-1], consumer)

    async def range(
        self, stream: str, *, start: str = "-", end: str = "+", count: int = 100, reverse: bool = False
    ) -> list[Entry]:
        """``XRANGE`` (``reverse``: ``XREVRANGE``, newest first) read as raw bytes: poison-proof.

        ``start``/``end`` are ids (``(`` prefix = exclusive), as for the Redis commands; with
        ``reverse`` the first bound is still ``start`` (the lower one).
        """
        if reverse:
            rows = await raw_command(self._redis, "XREVRANGE", stream, end, start, "COUNT", count)
        else:
            rows = await raw_command(self._redis, "XRANGE", stream, start, end, "COUNT", count)
        return _entries(rows)

    async def reclaim(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, count: int = 100
    ) -> list[Entry]:
        """Take over entries other consumers left pending for at least ``min_idle_ms``."""
        resp = (await self.once(["XAUTOCLAIM", stream, group, consumer, min_idle_ms, "0-0", "COUNT", count]))[0]
        claimed = resp[1] if len(resp) > 1 else []
        deleted = resp[2] if len(resp) > 2 else []
        entries = _entries(claimed)
        if deleted:  # trimmed while pending: nothing to process, just clear them
            await self._redis.xack(stream, group, *[_s(d) for d in deleted])
        if entries:
            metrics.BUS_RECLAIMED.labels(self._keys.profile, _short(stream), group).inc(len(entries))
            self._log.event("RECLAIMED", stream=_short(stream), group=group, count=len(entries))
            entries.sort(key=lambda e: cons.stream_id(e.id))
            entries = await self._with_deliveries(stream, group, entries, consumer=consumer)
        return entries

    async def _with_deliveries(
        self, stream: str, group: str, entries: list[Entry], *, consumer: str | None = None
    ) -> list[Entry]:
        rows = await self._redis.xpending_range(
            stream, group, min=entries[0].id, max=entries[-1].id, count=len(entries) * 2 + 10, consumername=consumer
        )
        counts = {str(_s(r["message_id"])): int(r["times_delivered"]) for r in rows}  # type: ignore[arg-type]
        return [Entry(e.id, e.fields, counts.get(e.id, e.deliveries)) for e in entries]

    # -- consumers: liveness, dead ones, order ---------------------------------------------------
    async def keep_alive(self, group: str, consumer: str) -> None:
        """Refresh this consumer's liveness key (``host|pid``, TTL ``consumers.ALIVE_TTL_MS``)."""
        await self._redis.set(self._keys.consumer_alive(group, consumer), cons.alive_value(_HOST, os.getpid()),
                              px=cons.ALIVE_TTL_MS)

    async def retire(self, stream: str, group: str, consumer: str) -> bool:
        """On a clean stop: drop the liveness key and leave the group if nothing is pending."""
        await self._redis.delete(self._keys.consumer_alive(group, consumer))
        return bool(await self._remove_if_empty(keys=[stream], args=[group, consumer]))

    async def group_consumers(self, stream: str, group: str) -> list[cons.ConsumerInfo]:
        rows = await self._redis.xinfo_consumers(stream, group)
        return [cons.ConsumerInfo(_s(r["name"]), int(r.get("pending", 0)), int(r.get("idle", 0))) for r in rows]

    async def recover_dead(
        self, stream: str, group: str, consumer: str, *, pid_alive: Callable[[int], bool] = cons.pid_running
    ) -> list[Entry]:
        """Claim every pending entry of the group's dead consumers, then remove them from the group.

        Returns the claimed entries (stream order).
        """
        others = [c for c in await self.group_consumers(stream, group) if c.name != consumer]
        if not others:
            return []
        alive = await self._liveness(group, others)
        dead = [c for c, a in zip(others, alive, strict=True) if cons.is_dead(c, a, host=_HOST, pid_alive=pid_alive)]
        keyless = [c for c, a in zip(others, alive, strict=True) if a is None and c in dead]
        if keyless:
            # a missing key may be a live consumer whose refresh a stall delayed (a GC pause, CPU
            # starvation, a slow Redis — ours too: our read of its key can overtake its refresh when
            # both resume): it refreshes as soon as it runs again, so look once more before claiming
            await asyncio.sleep(cons.KEYLESS_RECHECK_S)
            again = dict(zip((c.name for c in keyless), await self._liveness(group, keyless), strict=True))
            dead = [c for c in dead if c.name not in again
                    or cons.is_dead(c, again[c.name], host=_HOST, pid_alive=pid_alive)]
        claimed: list[Entry] = []
        for c in dead:
            if c.pending:
                rows = await self._redis.xpending_range(stream, group, min="-", max="+", count=c.pending + 100,
                                                        consumername=c.name)
                ids = [_s(r["message_id"]) for r in rows]  # type: ignore[arg-type]
                if ids:
                    # min-idle just under what we saw: a sweeper that claimed them meanwhile reset
                    # their idle time, so only one of two racing sweepers gets them
                    guard = max(0, min(int(r["time_since_delivered"]) for r in rows) - 1)
                    resp = (await self.once(["XCLAIM", stream, group, consumer, guard, *ids]))[0]
                    got = _entries(resp)
                    claimed += got
                    self._log.event("CONSUMER_CLAIMED", stream=_short(stream), group=group, dead=c.name,
                                    claimed=len(got), pending=len(ids))
            if await self._remove_if_empty(keys=[stream], args=[group, c.name]):
                await self._redis.delete(self._keys.consumer_alive(group, c.name))
                metrics.BUS_CONSUMERS_REMOVED.labels(self._keys.profile, _short(stream), group).inc()
                self._log.event("CONSUMER_REMOVED", stream=_short(stream), group=group, dead=c.name)
        if claimed:
            claimed.sort(key=lambda e: cons.stream_id(e.id))
            metrics.BUS_RECLAIMED.labels(self._keys.profile, _short(stream), group).inc(len(claimed))
            claimed = await self._with_deliveries(stream, group, claimed, consumer=consumer)
        return claimed

    async def _liveness(self, group: str, consumers: Sequence[cons.ConsumerInfo]) -> list[cons.Liveness | None]:
        pipe = self._redis.pipeline(transaction=False)
        for c in consumers:
            pipe.get(self._keys.consumer_alive(group, c.name))
        return [cons.parse_alive(v) for v in await pipe.execute()]

    async def pending_elsewhere(
        self, stream: str, group: str, consumer: str, *, order_field: bytes, cache: dict[str, str | None]
    ) -> dict[str, tuple[int, int]]:
        """Ordering key → earliest id pending at *other* consumers of the group (``{}`` when none).

        ``cache`` (entry id → key) spares re-reading the same entries; the caller bounds it.
        """
        summary = await self._redis.xpending(stream, group)
        others = [c for c in (summary.get("consumers") or []) if _s(c["name"]) != consumer and int(c["pending"])]
        if not others:
            return {}
        total = sum(int(c["pending"]) for c in others)
        rows = await self._redis.xpending_range(stream, group, min="-", max="+", count=min(total * 4 + 100, 20_000))
        ids = [_s(r["message_id"]) for r in rows if _s(r["consumer"]) != consumer]  # type: ignore[arg-type]
        missing = [i for i in ids if i not in cache]
        if missing:
            pipe = self._redis.pipeline(transaction=False)
            for i in missing:
                raw_command(pipe, "XRANGE", stream, i, i, "COUNT", 1)
            for i, rows_i in zip(missing, await pipe.execute(), strict=True):
                got = _entries(rows_i)
                cache[i] = _order_key(got[0], order_field) if got else None
        return cons.earliest_by_key((i, cache.get(i)) for i in ids)

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> None:
        if ids:
            await self.retry(lambda: self._redis.xack(stream, group, *ids), what="xack")

    async def lag(self, stream: str, group: str) -> int | None:
        """Entries not yet delivered to ``group`` plus its pending entries (None if unknown)."""
        for info in await self._redis.xinfo_groups(stream):
            if _s(info["name"]) == group:
                lag = info.get("lag")
                return (int(lag) if lag is not None else 0) + int(info.get("pending", 0))
        return None

    async def consume(
        self,
        *,
        stream: str,
        group: str,
        consumer: str,
        message_type: type[M],
        handler: Handler[M],
        stop: asyncio.Event,
        count: int = 100,
        block_ms: int = 1000,
        min_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        on_processed: Callable[[int], None] | None = None,
        order_field: str | None = "symbol",
        window: Window[M] | None = None,
    ) -> None:
        """Run ``handler`` over batches until ``stop`` is set (the current batch always finishes).

        ``order_field``: entries with the same value of this field are handled in stream order
        across consumers and crashes (None: no ordering; entries without the field: none).
        ``window``: admitted entries wait and are handled together when due (see :class:`Window`).
        """
        loop = _ConsumeLoop(
            bus=self, stream=stream, group=group, consumer=consumer, message_type=message_type,
            handler=handler, stop=stop, count=count, block_ms=block_ms, min_idle_ms=min_idle_ms,
            max_deliveries=max_deliveries, on_processed=on_processed,
            order_field=order_field.encode() if order_field else None, window=window,
        )
        await loop.run()

    @property
    def log(self) -> EventLog:
        return self._log

    @property
    def worker(self) -> str:
        return self._worker


class _ConsumeLoop(Generic[M]):
    """State of one :meth:`Bus.consume` call.

    Each round: claim the entries of dead consumers (every ``SWEEP_INTERVAL_S``; first of all
    at start-up, before any new entry is read), XAUTOCLAIM entries idle for ``min_idle_ms``,
    re-read our own pending list after a failure or a restart, else read new entries. The
    entries in hand are handled in stream order, except those of a symbol (``order_field``)
    with an earlier entry pending at another consumer or failed here: they are held back
    (unacked, in memory and in our pending list) until that earlier entry is done or ours.
    """

    def __init__(
        self,
        *,
        bus: Bus,
        stream: str,
        group: str,
        consumer: str,
        message_type: type[M],
        handler: Handler[M],
        stop: asyncio.Event,
        count: int,
        block_ms: int,
        min_idle_ms: int,
        max_deliveries: int,
        on_processed: Callable[[int], None] | None,
        order_field: bytes | None,
        window: Window[M] | None = None,
    ) -> None:
        self.bus, self.stream, self.group, self.consumer = bus, stream, group, consumer
        self.message_type, self.handler, self.stop = message_type, handler, stop
        self.count, self.block_ms, self.min_idle_ms, self.max_deliveries = count, block_ms, min_idle_ms, max_deliveries
        self.on_processed = on_processed
        self.order_field = order_field
        self.backlog = True  # re-read our own pending entries first (restart with the same name)
        self.failures: dict[str, int] = {}
        self.failed_keys: dict[str, str] = {}  # failed entry id → its ordering key (holds later ones)
        self.held: dict[str, Entry] = {}  # held back for order, oldest first
        self.key_cache: dict[str, str | None] = {}
        self.last_sweep = float("-inf")
        self.last_reclaim = time.monotonic()  # XAUTOCLAIM only after one idle period (dead ones: sweep)
        self.last_lag = 0.0
        self.labels = (bus.keys.profile, _short(stream), group)
        self.unacked: list[str] = []  # handled, acked with the next read (or on stop)
        self.window = window
        self.waiting: dict[str, tuple[Entry, Parsed[M]]] = {}  # admitted to the window, not yet handled
        self.window_opened_ms = 0  # window clock when the oldest waiting entry was admitted

    async def run(self) -> None:
        await self.bus.retry(lambda: self.bus.ensure_group(self.stream, self.group), what="xgroup_create",
                             stop=self.stop)
        alive = asyncio.create_task(self._keep_alive())
        try:
            await self._loop()
        finally:
            await _cancel_and_wait(alive, timeout_s=KEEPALIVE_STOP_S)
            if self.unacked:
                done, self.unacked = self.unacked, []
                await self.bus.ack(self.stream, self.group, done)
            with contextlib.suppress(*_TRANSIENT, ResponseError):
                await self.bus.retire(self.stream, self.group, self.consumer)

    async def _keep_alive(self) -> None:
        warned = False
        me = asyncio.current_task()
        while True:
            try:
                await self.bus.keep_alive(self.group, self.consumer)
                warned = False
            except _TRANSIENT as exc:
                if not warned:
                    self.bus.log.warn("CONSUMER_KEEPALIVE_FAILED", group=self.group, error=type(exc).__name__)
                    warned = True
            if me is not None and me.cancelling():
                # a cancel that reached us inside the Redis client can come back as a connection error (or
                # not at all): honour it here, or the consumer's stop waits for this loop forever
                raise asyncio.CancelledError
            await asyncio.sleep(cons.ALIVE_REFRESH_S)

    async def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                entries = await self.bus.retry(self._next_batch, what="xreadgroup", stop=self.stop)
            except asyncio.CancelledError:
                if self.stop.is_set():
                    break
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream or group vanished (e.g. FLUSHALL): recreate
                    self.bus.log.warn("GROUP_RECREATED", stream=self.labels[1], group=self.group)
                    await self.bus.ensure_group(self.stream, self.group)
                    self.held.clear()
                    self.waiting.clear()
                    continue
                raise
            failed_before = len(self.failures)
            if entries:
                await self._dispatch(entries)
            if self._due_in_ms() == 0:
                await self._flush()
            if len(self.failures) > failed_before or (entries and self.failures and self.backlog):
                await self._backoff()
        if self.waiting and self.window is not None and self.window.decide_on_stop():
            await self._flush()

    def _due_in_ms(self) -> int | None:
        """None when nothing waits in a window, 0 when the waiting batch is due, else ms to wait."""
        if self.window is None or not self.waiting:
            return None
        return max(0, self.window.due_in_ms(waiting=len(self.waiting), oldest_ms=self.window_opened_ms))

    async def _flush(self) -> None:
        """Hand every waiting entry to the handler (the window is due, or the loop stops)."""
        batch, self.waiting = list(self.waiting.values()), {}
        await self._handle_and_count(batch, settled=0, done=[])

    async def _backoff(self) -> None:
        """Pause before retrying failed entries, longer after each failure (stop-aware)."""
        worst = max(self.failures.values(), default=1)
        try:
            await asyncio.wait_for(self.stop.wait(), min(2.0, 0.05 * 2**worst))
        except TimeoutError:
            pass

    async def _next_batch(self) -> list[Entry]:
        try:
            return await self._next_batch_once()
        except _TRANSIENT:
            # a reply lost with the connection may have delivered entries we never saw: they sit in
            # our pending list, so read that first on the retry — never newer entries past them
            self.backlog = True
            raise

    async def _next_batch_once(self) -> list[Entry]:
        now = time.monotonic()
        got: list[Entry] = []
        if now - self.last_lag > 5.0:
            self.last_lag = now
            lag = await self.bus.lag(self.stream, self.group)
            if lag is not None:
                metrics.BUS_LAG.labels(*self.labels).set(lag)
        if now - self.last_sweep >= cons.SWEEP_INTERVAL_S:
            self.last_sweep = now
            claimed = await self.bus.recover_dead(self.stream, self.group, self.consumer)
            got += claimed
        if now - self.last_reclaim >= max(0.05, self.min_idle_ms / 2000.0):
            self.last_reclaim = now
            got += await self.bus.reclaim(
                self.stream, self.group, self.consumer, min_idle_ms=self.min_idle_ms, count=self.count
            )
        acks = self.unacked
        elsewhere: bool | None = None  # another consumer holds pending entries (None: not looked this round)
        if not got and self.backlog:
            # our pending list also holds the entries waiting in a window: read past them
            got = await self.bus.read(
                self.stream, self.group, self.consumer, count=self.count + len(self.waiting), pending=True,
                ack_first=acks,
            )
            acks = []
            self.backlog = bool(got) and any(e.id not in self.held and e.id not in self.waiting for e in got)
        if not got and len(self.held) < self.count * 10:
            block = min(self.block_ms, 100) if self.held else self.block_ms  # held: look again soon
            due_in = self._due_in_ms()
            if due_in is not None:  # entries wait in a window: read no longer than until it is due
                block = max(1, min(block, due_in))
            if self.order_field is None:
                got = await self.bus.read(
                    self.stream, self.group, self.consumer, count=self.count, block_ms=block, ack_first=acks
                )
            else:
                got, elsewhere = await self.bus.read_new(
                    self.stream, self.group, self.consumer, count=self.count, block_ms=block, ack_first=acks
                )
            acks = []
        if acks:
            await self.bus.ack(self.stream, self.group, acks)
        self.unacked = []
        return await self._in_order(got, elsewhere=elsewhere)

    async def _in_order(self, got: list[Entry], *, elsewhere: bool | None) -> list[Entry]:
        """Merge ``got`` with the held entries; return those free to go, in stream order.

        Which earlier entries wait at other consumers is looked up unless the summary read with
        this round's entries (``elsewhere`` False, see :meth:`Bus.read_new`) proves there are none.
        Never from a count of the group's consumers kept between rounds: a consumer that joins or
        comes back from a stall (its entries claimed, itself removed from the group) after that
        count was taken would hold an earlier entry of a symbol we then handle first.
        """
        merged = dict(self.held)
        for e in got:
            if e.id not in merged or e.id in self.failures:  # a held entry keeps its delivery count
                merged[e.id] = e
        if self.order_field is None or not merged:
            self.held = {}
            return sorted(merged.values(), key=lambda e: cons.stream_id(e.id))
        blockers: dict[str, tuple[int, int]] = {}
        if elsewhere is not False:
            if len(self.key_cache) > 50_000:
                self.key_cache.clear()
            blockers = await self.bus.pending_elsewhere(
                self.stream, self.group, self.consumer, order_field=self.order_field, cache=self.key_cache
            )
        stuck = {k for i, k in self.failed_keys.items() if i not in merged}
        ready, held = cons.split_in_order(
            ((e.id, _order_key(e, self.order_field)) for e in merged.values()), blockers=blockers, stuck_keys=stuck
        )
        if held and not self.held:
            self.bus.log.event("ORDER_HOLD", stream=self.labels[1], group=self.group, held=len(held),
                               symbols=len({_order_key(merged[i], self.order_field) for i in held}))
        self.held = {i: merged[i] for i in held}
        metrics.BUS_HELD.labels(*self.labels).set(len(self.held))
        return [merged[i] for i in ready]

    async def _dispatch(self, entries: list[Entry]) -> None:
        entries = [e for e in entries if e.id not in self.waiting]  # a pending re-read sees them again
        good: list[tuple[Entry, Parsed[M]]] = []
        done: list[str] = []
        settled = 0  # dead-lettered and acked in one MULTI
        for entry in entries:
            deliveries = entry.deliveries
            if entry.fields is None:
                done.append(entry.id)  # trimmed before we read it: nothing to do
                continue
            if deliveries > self.max_deliveries:
                await self.bus.deadletter(
                    source_stream=self.stream, entry=entry, group=self.group,
                    reason=f"max_deliveries_exceeded: delivered {deliveries} times (limit {self.max_deliveries})",
                    code="max_deliveries_exceeded", consumer=self.consumer, ack=True,
                )
                settled += 1
                self._resolved(entry.id)
                continue
            try:
                message = self.message_type.from_fields(entry.fields)
            except MessageError as exc:
                code = "non_utf8" if "UTF-8" in exc.reason else "malformed"
                await self.bus.deadletter(
                    source_stream=self.stream, entry=entry, reason=str(exc), group=self.group, code=code,
                    consumer=self.consumer, ack=True,
                )
                settled += 1
                self._resolved(entry.id)
                continue
            except Exception as exc:  # whatever an entry's content does, the worker does not die of it
                await self.bus.deadletter(
                    source_stream=self.stream, entry=entry, group=self.group, code="unparseable",
                    reason=f"unparseable: {type(exc).__name__}: {exc}", consumer=self.consumer, ack=True,
                )
                settled += 1
                self._resolved(entry.id)
                continue
            good.append((entry, Parsed(entry.id, message, deliveries)))
        if self.window is not None:
            good = await self._admit(good, done)
        await self._handle_and_count(good, settled=settled, done=done)

    async def _admit(self, good: list[tuple[Entry, Parsed[M]]], done: list[str]) -> list[tuple[Entry, Parsed[M]]]:
        """Screen arrivals through the window: the kept ones wait, the others join ``done``."""
        if self.window is None:
            return good
        if not good:
            return []
        try:
            keep = await self.window.admit([p for _, p in good])
        except Exception as exc:
            for item in good:
                self._failed(item, exc)
            return []
        for entry, parsed in good:
            if parsed.id in keep:
                if not self.waiting:
                    self.window_opened_ms = self.window.now_ms()
                self.waiting[parsed.id] = (entry, parsed)
            else:
                self._resolved(parsed.id)
                done.append(parsed.id)
        return []

    async def _handle_and_count(self, good: list[tuple[Entry, Parsed[M]]], *, settled: int, done: list[str]) -> None:
        if good:
            started = time.perf_counter()
            ok = await self._handle(good)
            metrics.STAGE_LATENCY.labels(self.bus.keys.profile, self.bus.worker).observe(
                time.perf_counter() - started
            )
            done.extend(ok)
        self.unacked.extend(done)  # acked with the next read: the handler's effects are already durable
        if done or settled:
            metrics.WORKER_PROCESSED.labels(*self.labels[:1], self.bus.worker, self.labels[1]).inc(len(done) + settled)
            if self.on_processed is not None:
                self.on_processed(len(done) + settled)

    def _resolved(self, entry_id: str) -> None:
        self.failures.pop(entry_id, None)
        self.failed_keys.pop(entry_id, None)

    async def _handle(self, batch: list[tuple[Entry, Parsed[M]]]) -> list[str]:
        """Run the handler; on failure retry one by one. Returns the ids that succeeded.

        One by one, an entry whose symbol already failed in this batch is not tried: it is
        held back behind the failed one (which is retried from our pending list).
        """
        try:
            await self.handler([p for _, p in batch])
            for _, p in batch:
                self._resolved(p.id)
            return [p.id for _, p in batch]
        except Exception as exc:
            if len(batch) == 1:
                return self._failed(batch[0], exc)
        ok: list[str] = []
        failed_keys: set[str] = set()
        for entry, p in batch:
            key = _order_key(entry, self.order_field)
            if key is not None and key in failed_keys:
                self.held[entry.id] = entry
                continue
            try:
                await self.handler([p])
                self._resolved(p.id)
                ok.append(p.id)
            except Exception as exc:
                self._failed((entry, p), exc)
                if key is not None:
                    failed_keys.add(key)
        return ok

    def _failed(self, item: tuple[Entry, Parsed[M]], exc: BaseException) -> list[str]:
        entry, parsed = item
        self.failures[parsed.id] = parsed.deliveries
        key = _order_key(entry, self.order_field)
        if key is not None:
            self.failed_keys[parsed.id] = key
        self.backlog = True  # retry from our pending list
        metrics.WORKER_ERRORS.labels(self.bus.keys.profile, self.bus.worker, "handler").inc()
        self.bus.log.error(
            "HANDLER_FAILED", stream=self.labels[1], id=parsed.id, deliveries=parsed.deliveries,
            error=f"{type(exc).__name__}: {exc}",
        )
        return []


def _order_key(entry: Entry, field: bytes | None) -> str | None:
    if field is None or entry.fields is None:
        return None
    value = entry.fields.get(field)
    return value.decode("utf-8", errors="replace") if value is not None else None


def _short(stream: str) -> str:
    """``quantum:{paper}:stream:ai.signal`` → ``ai.signal`` (metric label)."""
    return stream.rsplit(":", 1)[-1]


def _reason_code(reason: str) -> str:
    head = reason.split(":", 1)[0]
    return head if head.replace("_", "").replace(".", "").isalnum() and len(head) < 40 else "malformed"
