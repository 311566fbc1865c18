"""How many CLIs this process can hold, and the fair queue of turns waiting for one.

Each running turn needs a CLI process, and a CLI holds ~170 MB. Unless the settings MAX_CONCURRENT_TURNS and
MAX_WARM_CLIENTS say otherwise, both come from the memory available when the process starts, with headroom,
over CLI_RSS_BYTES (the measured size of one CLI). A turn that cannot start yet waits in `Admission`'s queue
instead of being refused; it starts as soon as there is room, first come, first served. A user's own cap
(MAX_RUNNING_TURNS_PER_USER) bounds their share while others wait, never their use of an idle machine.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter, deque
from dataclasses import dataclass, field

from core.conf import copilot_setting

MEMORY_HEADROOM = 0.7  # of the memory available at start, what CLIs may take


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux); 4 GiB elsewhere."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024 ** 3


@functools.cache
def memory_capacity() -> int:
    """How many CLIs fit in this process's share of memory: at least one."""
    return max(1, int(available_memory_bytes() * MEMORY_HEADROOM // copilot_setting("CLI_RSS_BYTES")))


def max_warm_clients() -> int:
    """CLIs alive at once in this process, running a turn or kept warm between turns."""
    return copilot_setting("MAX_WARM_CLIENTS") or memory_capacity()


def max_concurrent_turns() -> int:
    return min(copilot_setting("MAX_CONCURRENT_TURNS") or memory_capacity(), max_warm_clients())


@dataclass
class Waiter:
    user_id: int | None
    admitted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Admission:
    """Slots for running turns in this process."""

    def __init__(self) -> None:
        self.running: Counter[int | None] = Counter()
        self.waiters: deque[Waiter] = deque()

    @property
    def total(self) -> int:
        return sum(self.running.values())

    def _may_start(self, waiter: Waiter) -> bool:
        if self.total >= max_concurrent_turns():
            return False
        if self.running[waiter.user_id] < copilot_setting("MAX_RUNNING_TURNS_PER_USER"):
            return True
        return all(other.user_id == waiter.user_id for other in self.waiters if other is not waiter)

    def _admit_waiting(self) -> None:
        for waiter in list(self.waiters):
            if waiter.admitted.done():
                self.waiters.remove(waiter)
            elif self._may_start(waiter):
                self.waiters.remove(waiter)
                self.running[waiter.user_id] += 1
                waiter.admitted.set_result(None)

    def try_enter(self, user_id: int | None) -> bool:
        """Take a slot now if one is free for this user and nobody waits before them."""
        waiter = Waiter(user_id)
        if any(self._may_start(earlier) for earlier in self.waiters) or not self._may_start(waiter):
            return False
        self.running[user_id] += 1
        return True

    async def enter(self, user_id: int | None) -> None:
        """Take a slot, waiting in line for one; cancelling the wait leaves the line."""
        if self.try_enter(user_id):
            return
        waiter = Waiter(user_id)
        self.waiters.append(waiter)
        try:
            await waiter.admitted
        except asyncio.CancelledError:
            if waiter.admitted.done() and not waiter.admitted.cancelled():
                self.leave(user_id)  # admitted just as it was cancelled
            else:
                waiter.admitted.cancel()
                self._admit_waiting()
            raise

    def leave(self, user_id: int | None) -> None:
        self.running[user_id] -= 1
        if self.running[user_id] <= 0:
            del self.running[user_id]
        self._admit_waiting()

    def waiting(self) -> int:
        return sum(not waiter.admitted.done() for waiter in self.waiters)
