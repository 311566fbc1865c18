"""The session event log on Redis Streams, for any number of processes (used when REDIS_URL is set).

Per session: `…:seq` holds the last seq, `…:events` is a stream whose entry ids are `<seq>-0`, and
`…:lock` serialises writers across processes. An append with a durable write takes two round trips: one
Lua call that takes the lock and reads the seq, and one that adds the events, moves the seq and releases
the lock; an append without one takes a single call while nobody holds the lock. Whoever releases the lock
publishes on `…:lock:released`, and a writer waiting for it listens there, so it is woken, not polling. The
keys expire after EVENT_LOG_TTL_SECONDS without appends; the stream keeps the newest EVENT_LOG_MAX_EVENTS
entries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import redis.asyncio as redis

from chat.events.chunks import Chunk
from chat.events.log import DurableWrite, Event, SeqSeeder, publish
from core.conf import copilot_setting

logger = logging.getLogger(__name__)

LOCK_MS = 30_000
LOCK_WAIT_SECONDS = 30

ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('get', KEYS[2])}
end
return {0, false}
"""

COMMIT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local maxlen = ARGV[4]
for i = 5, #ARGV, 2 do
  redis.call('xadd', KEYS[3], 'MAXLEN', maxlen, ARGV[i], 'e', ARGV[i + 1])
end
redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('pexpire', KEYS[3], ARGV[3])
redis.call('del', KEYS[1])
redis.call('publish', KEYS[1] .. ':released', '1')
return 1
"""

# One round trip for events without a durable write: 0 when the lock is held or the seq is not stored yet.
APPEND_UNLOCKED = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
local last = redis.call('get', KEYS[2])
if not last then return 0 end
local first = tonumber(last) + 1
for i = 3, #ARGV do
  redis.call('xadd', KEYS[3], 'MAXLEN', ARGV[2], (first + i - 3) .. '-0', 'e', ARGV[i])
end
redis.call('set', KEYS[2], first + #ARGV - 3, 'PX', ARGV[1])
redis.call('pexpire', KEYS[3], ARGV[1])
return first
"""

RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('publish', KEYS[1] .. ':released', '1')
  return 1
end
return 0
"""


class LockTimeout(RuntimeError):
    pass


class RedisEventLog:
    def __init__(self, *, url: str, seed_last_seq: SeqSeeder, prefix: str = "copilot") -> None:
        self._url = url
        self._seed_last_seq = seed_last_seq
        self._prefix = prefix
        self._clients: dict[asyncio.AbstractEventLoop, redis.Redis] = {}
        self._local_locks: dict[str, asyncio.Lock] = {}

    def _client(self) -> redis.Redis:
        # A client's connections belong to the event loop that opened them.
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = redis.Redis.from_url(self._url)
        return self._clients[loop]

    def _keys(self, session_id: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:session:{session_id}"
        return f"{base}:lock", f"{base}:seq", f"{base}:events"

    async def _try_acquire(self, session_id: str, token: str) -> tuple[bool, int | None]:
        lock_key, seq_key, _ = self._keys(session_id)
        acquired, stored = await self._client().eval(ACQUIRE, 2, lock_key, seq_key, token, LOCK_MS)
        return bool(acquired), int(stored) if stored is not None else None

    async def _acquire(self, session_id: str, token: str) -> int | None:
        """Take the session's lock; returns the stored last seq (None when not stored).

        Held by another process (rare, and brief): wait to hear it released, listening before each try, so a
        release between a failed try and the wait is not missed. The lock expires after LOCK_MS in any case.
        """
        acquired, stored = await self._try_acquire(session_id, token)
        if acquired:
            return stored
        lock_key = self._keys(session_id)[0]
        deadline = asyncio.get_running_loop().time() + LOCK_WAIT_SECONDS
        async with self._client().pubsub(ignore_subscribe_messages=True) as released:
            await released.subscribe(f"{lock_key}:released")
            while True:
                acquired, stored = await self._try_acquire(session_id, token)
                if acquired:
                    return stored
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise LockTimeout(f"session {session_id}: the event log lock was held for {LOCK_WAIT_SECONDS}s")
                # Woken by a release; at the latest when a lost holder's lock has expired.
                await released.get_message(timeout=min(left, LOCK_MS / 1000))

    async def append(self, session_id: str, turn_id: str | None, batch: list[Chunk],
                     durable_write: DurableWrite | None = None) -> list[Event]:
        if not batch:
            return []
        bodies = [json.dumps({"turn_id": turn_id, "chunk": chunk}) for chunk in batch]
        async with self._local_locks.setdefault(session_id, asyncio.Lock()):
            first = 0
            if durable_write is None:
                first = await self._append_unlocked(session_id, bodies)
            if not first:
                first = await self._append_locked(session_id, bodies, durable_write)
            if not first:
                return []
        events = [Event.of(first + offset, session_id, turn_id, chunk) for offset, chunk in enumerate(batch)]
        await publish(session_id, events)
        return events

    async def _append_unlocked(self, session_id: str, bodies: list[str]) -> int:
        """Append in one round trip; returns the first seq, or 0 when the slow path must do it."""
        return await self._client().eval(APPEND_UNLOCKED, 3, *self._keys(session_id), self._ttl_ms(),
                                         copilot_setting("EVENT_LOG_MAX_EVENTS"), *bodies)

    async def _append_locked(self, session_id: str, bodies: list[str], durable_write: DurableWrite | None) -> int:
        """Append under the session's lock, with the durable write; returns the first seq, 0 when dropped."""
        lock_key, seq_key, stream_key = self._keys(session_id)
        token = uuid.uuid4().hex
        stored = await self._acquire(session_id, token)
        try:
            last = stored if stored is not None else await self._seed_last_seq(session_id)
            first = last + 1
            if durable_write is not None and not await durable_write(first + len(bodies) - 1):
                await self._client().eval(RELEASE, 1, lock_key, token)
                return 0
        except BaseException:
            await asyncio.shield(self._client().eval(RELEASE, 1, lock_key, token))
            raise
        args: list = [token, first + len(bodies) - 1, self._ttl_ms(), copilot_setting("EVENT_LOG_MAX_EVENTS")]
        for offset, body in enumerate(bodies):
            args += [f"{first + offset}-0", body]
        if not await self._client().eval(COMMIT, 3, lock_key, seq_key, stream_key, *args):
            raise LockTimeout(f"session {session_id}: the event log lock expired during an append")
        return first

    @staticmethod
    def _ttl_ms() -> int:
        return int(copilot_setting("EVENT_LOG_TTL_SECONDS") * 1000)

    async def last_seq(self, session_id: str) -> int:
        stored = await self._client().get(self._keys(session_id)[1])
        return int(stored) if stored is not None else await self._seed_last_seq(session_id)

    async def read_after(self, session_id: str, after_seq: int) -> list[Event] | None:
        last = await self.last_seq(session_id)
        if after_seq >= last:
            return []
        entries = await self._client().xrange(self._keys(session_id)[2], min=f"{after_seq + 1}-0", max="+")
        events = []
        for entry_id, fields in entries:
            body = json.loads(fields[b"e"])
            events.append(Event.of(int(entry_id.split(b"-")[0]), session_id, body["turn_id"], body["chunk"]))
        if not events or events[0].seq != after_seq + 1:
            return None  # trimmed or expired: the client needs a snapshot
        return events

    async def forget(self, session_id: str) -> None:
        await self._client().delete(*self._keys(session_id))

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
