"""Proof Key for Code Exchange (RFC 7636), S256 only."""

from __future__ import annotations

import base64
import hashlib
import secrets

__all__ = ["new_verifier", "s256_challenge"]


def new_verifier() -> str:
    """Return a fresh code verifier: 64 URL-safe characters, 384 bits (RFC 7636 section 4.1)."""
    return secrets.token_urlsafe(48)


def s256_challenge(verifier: str) -> str:
    """Return BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
