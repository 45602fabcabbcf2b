"""Token-bucket arithmetic for the SQL rate-limit adapters (Redis does the same in Lua)."""

from __future__ import annotations

from dataclasses import dataclass

from storage.ports import Limit


@dataclass(frozen=True, slots=True)
class Level:
    """A bucket after one token was taken: what to store."""

    tokens: float
    updated_at: float
    full_at: float  # when it is full again: from then on the row says nothing


def refill(limit: Limit, stored: tuple[float, float] | None, now: float) -> Level | None:
    """The bucket after taking one token at `now`, or None when it has none to give.

    `stored` is (tokens, updated_at) or None for a bucket never used (or forgotten: full).
    A clock behind the last update (another process's) refills nothing, never a negative.
    """
    if stored is None:
        tokens, updated = float(limit.capacity), now
    else:
        tokens, updated = stored
        tokens = min(float(limit.capacity), tokens + max(0.0, now - updated) * limit.rate)
    if tokens < 1.0:
        return None
    left = tokens - 1.0
    at = max(now, updated)
    return Level(left, at, at + (limit.capacity - left) / limit.rate)
