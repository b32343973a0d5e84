"""Secrets and tokens at rest: Fernet (AES-CBC + HMAC-SHA256, authenticated) with rotatable keys.

Two boxes, one per purpose, so a value sealed for one can never be opened as the other:

- client secrets stored in the database (:func:`encrypt`, :func:`decrypt`, :func:`rotate`): the keys of
  ``DUO_OIDC["ENCRYPTION_KEYS"]`` as given; they are required to store a secret in the database;
- tokens at rest, in the session store and the shared cache (:func:`seal`, :func:`unseal`): keys
  derived with HKDF-SHA256 (a fixed, purpose-specific ``info``) from each of ``ENCRYPTION_KEYS``, then
  from ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` (so values sealed before ``ENCRYPTION_KEYS`` was set
  still open). The first key seals, all open: rotate by putting the new key first and keeping the old
  one until the values it sealed are gone (sessions and cache entries expire).
"""

from __future__ import annotations

import base64
import functools
import json
import time
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..conf import conf

__all__ = [
    "SealedValueError",
    "SecretDecryptionError",
    "decrypt",
    "derive_token_key",
    "encrypt",
    "open_bound",
    "rotate",
    "seal",
    "seal_bound",
    "unseal",
]

# Changing it changes every derived key: existing sealed values would no longer open.
TOKEN_KEY_INFO = b"django-duo-oidc/tokens-at-rest/v1"


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


class SealedValueError(Exception):
    """A sealed value cannot be opened: tampered with, not sealed by us, or sealed under a key no
    longer configured (``SECRET_KEY`` rotated without ``SECRET_KEY_FALLBACKS``, a retired key)."""


def _fernet() -> MultiFernet:
    keys = conf.encryption_keys
    if not keys:
        raise ImproperlyConfigured(
            'Storing a client secret in the database needs DUO_OIDC["ENCRYPTION_KEYS"]; generate one with '
            '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`, '
            "or give the provider the name of an environment variable instead."
        )
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured('DUO_OIDC["ENCRYPTION_KEYS"] holds a key that is not a valid Fernet key.') from exc


def encrypt(secret: str) -> str:
    """Return ``secret`` encrypted with the first configured key."""
    return _fernet().encrypt(secret.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """Return the secret in ``token``, trying every configured key."""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("The stored client secret cannot be decrypted with the configured keys.") from exc


def rotate(token: str) -> str:
    """Return ``token`` re-encrypted with the first configured key."""
    return _fernet().rotate(token.encode("ascii")).decode("ascii")


# Tokens at rest ------------------------------------------------------------------------------------


def derive_token_key(material: str | bytes) -> bytes:
    """Return the Fernet key (urlsafe base64 of 32 bytes) for tokens at rest derived from ``material``."""
    raw = material.encode() if isinstance(material, str) else material
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=TOKEN_KEY_INFO).derive(raw)
    return base64.urlsafe_b64encode(derived)


def _token_key_material() -> tuple[str | bytes, ...]:
    derived = (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", []))
    # With ENCRYPTION_KEYS the first of them seals; SECRET_KEY's keys still open what was sealed before
    # they were set (a site that sets them for the first time must not log every user out).
    return (*conf.encryption_keys, *derived)


@functools.lru_cache(maxsize=8)
def _token_box(material: tuple[str | bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(derive_token_key(m)) for m in material])


def seal(value: Any) -> str:
    """Return ``value`` (anything JSON can hold) encrypted and authenticated with the first token key."""
    data = json.dumps(value, separators=(",", ":")).encode()
    return _token_box(_token_key_material()).encrypt(data).decode("ascii")


def unseal(sealed: Any) -> Any:
    """Return the value sealed in ``sealed``, trying every token key.

    :raises SealedValueError: not a sealed value, altered, or sealed under a key no longer configured.
    """
    if not isinstance(sealed, str):
        raise SealedValueError("Not a sealed value.")
    try:
        data = _token_box(_token_key_material()).decrypt(sealed.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError) as exc:
        raise SealedValueError("The value cannot be opened with the configured keys.") from exc
    return json.loads(data)


# Values shared through the cache --------------------------------------------------------------------


def seal_bound(key: str, value: Any, ttl: float | None) -> str:
    """Seal ``value`` bound to the cache ``key`` it is stored under and to its expiry (``ttl`` seconds).

    Whoever can write to the cache but holds no key can then neither read a value, nor forge one, nor
    move one under another key (another token's answer), nor write an old one back after it expired
    (an "active" answer from before a revocation).
    """
    return seal({"k": key, "x": None if ttl is None else time.time() + float(ttl), "v": value})


def open_bound(key: str, sealed: Any) -> Any:
    """Return the value :func:`seal_bound` sealed for ``key``.

    :raises SealedValueError: not sealed by us, sealed for another key, or expired.
    """
    entry = unseal(sealed)
    if not isinstance(entry, dict) or entry.get("k") != key or "v" not in entry:
        raise SealedValueError("The value was sealed for another cache key.")
    expires = entry.get("x")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
        raise SealedValueError("The value's expiry is not a number.")
    if expires is not None and time.time() >= expires:
        raise SealedValueError("The value has expired.")
    return entry["v"]
