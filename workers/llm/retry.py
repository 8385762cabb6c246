"""How long a turn waits before retrying a transient provider error."""

from __future__ import annotations

import random

MAX_BACKOFF = 60.0
BASE_BACKOFF = 1.0


def countdown(retries: int, retry_after: float | None, max_backoff: float = MAX_BACKOFF) -> float:
    """The provider's own `retry_after` wins; otherwise exponential backoff with full jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_backoff)
    return random.uniform(0, min(max_backoff, BASE_BACKOFF * 2 ** retries))
