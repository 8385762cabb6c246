"""How long a turn waits before retrying a transient provider error.

The provider's own wait (retry-after-ms, retry-after, parsed in `http.parse_retry_after`) wins,
capped at `max_backoff`. Otherwise exponential backoff with "equal jitter": somewhere between half
and all of `BASE_BACKOFF * 2**retries`, so that a fleet of turns spreads out but never retries at once.
"""

from __future__ import annotations

import random

MAX_RETRIES = 4  # the schema's agent.max_retries default
MAX_BACKOFF = 60.0
BASE_BACKOFF = 1.0


def countdown(retries: int, retry_after: float | None, max_backoff: float = MAX_BACKOFF) -> float:
    """Seconds to wait before retry number `retries + 1` (retries counts the ones already made)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_backoff)
    ceiling = min(max_backoff, BASE_BACKOFF * 2 ** max(retries, 0))
    return random.uniform(ceiling / 2, ceiling)
