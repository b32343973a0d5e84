"""When to renew a token: one rule for browser sessions and for the outbound client's tokens."""

from __future__ import annotations

__all__ = ["renewal_margin"]


def renewal_margin(margin: float, lifetime: float | None) -> float:
    """Return how many seconds before expiry a token is renewed: ``margin``, at most half its lifetime.

    A token living 20 s with a 30 s margin would otherwise be due the moment it is issued (every
    request renews it, and a refused renewal ends a login that just happened). Without a known,
    positive lifetime the configured margin applies.
    """
    if lifetime is None or lifetime <= 0:
        return margin
    return min(margin, lifetime / 2)
