"""Settings of the daphne processes the benchmarks start: the project's own, with the websocket rate limits lifted.

A benchmark reconnects one user 50 times in a row and watches one session with 100 sockets of its owner, far past
COPILOT["RATE_LIMITS"] (e.g. 20 resumes per user every 10 s). The limits stay checked on every frame and resume,
so their cost is in the figures; only the counts they allow are raised.
"""

from copilot_site.settings import *  # noqa: F403  (the project's settings, then the one change below)
from copilot_site.settings import COPILOT

if "RATE_LIMITS" in COPILOT:
    COPILOT = {**COPILOT, "RATE_LIMITS": {kind: (10**9, window) for kind, (_, window) in COPILOT["RATE_LIMITS"].items()}}
