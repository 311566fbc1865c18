"""Rate limits for the websocket: fixed windows counted in this process, or in Redis across processes."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from core.conf import copilot_setting
from core.errors import ApplicationError


class RateLimited(ApplicationError):
    code = "rate_limited"
    http_status = 429


class WindowCounter:
    """Counts hits per key in fixed windows; `hit` says whether the key is still within its limit."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = defaultdict(int)
        self._redis = None
        self._redis_loop = None

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> bool:
        window = int(time.time() // window_seconds)
        redis_url = copilot_setting("REDIS_URL")
        if redis_url:
            client = self._client(redis_url)
            name = f"{copilot_setting('REDIS_PREFIX')}:rate:{key}:{window}"
            count, _ = await client.pipeline().incr(name).expire(name, int(window_seconds) + 1).execute()
        else:
            if len(self._counts) > 100_000:
                self._counts = defaultdict(int, {k: v for k, v in self._counts.items() if k[1] >= window})
            self._counts[(key, window)] += 1
            count = self._counts[(key, window)]
        return count <= limit

    def _client(self, url: str):
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            import redis.asyncio as redis

            self._redis, self._redis_loop = redis.Redis.from_url(url), loop
        return self._redis


counter = WindowCounter()


async def check_rate(kind: str, key: str) -> None:
    """Raise RateLimited when `key` went past the limit for `kind` (a key of COPILOT["RATE_LIMITS"])."""
    limit, window_seconds = copilot_setting("RATE_LIMITS")[kind]
    if not await counter.hit(f"{kind}:{key}", limit=limit, window_seconds=window_seconds):
        raise RateLimited(f"too many {kind}: at most {limit} every {window_seconds:g} s; slow down")
