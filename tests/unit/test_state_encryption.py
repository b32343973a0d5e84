"""The token box (issue 10 item 22): authenticated encryption of tokens at rest, rotatable keys."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured

from django_duo_oidc.state import encryption
from django_duo_oidc.state.encryption import SealedValueError, SecretDecryptionError, seal, unseal

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


def keys(settings: Any, *values: str) -> None:
    settings.DUO_OIDC = {**settings.DUO_OIDC, "ENCRYPTION_KEYS": list(values)}


def no_keys(settings: Any) -> None:
    settings.DUO_OIDC = {k: v for k, v in settings.DUO_OIDC.items() if k != "ENCRYPTION_KEYS"}


def test_round_trip_of_json_values() -> None:
    value = {"access_token": TOKEN, "refresh_token": None, "n": [1, 2.5, True]}
    sealed = seal(value)
    assert TOKEN not in sealed
    assert unseal(sealed) == value
    assert seal(value) != sealed  # a fresh IV each time: equal tokens do not show as equal


def test_rotation_with_encryption_keys(settings: Any) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    keys(settings, old)
    sealed = seal(TOKEN)
    keys(settings, new, old)
    assert unseal(sealed) == TOKEN  # old values still open
    resealed = seal(TOKEN)
    keys(settings, new)
    assert unseal(resealed) == TOKEN  # new values use the first key
    with pytest.raises(SealedValueError):
        unseal(sealed)  # the old key retired


def test_rotation_of_secret_key_with_fallbacks(settings: Any) -> None:
    no_keys(settings)
    settings.SECRET_KEY = "first-secret-key-" + "a" * 40
    sealed = seal(TOKEN)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "second-secret-key-" + "b" * 40
    assert unseal(sealed) == TOKEN
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(SealedValueError):
        unseal(sealed)


@pytest.mark.parametrize("position", [0, 10, 40, -5])
def test_a_tampered_value_does_not_open(position: int) -> None:
    sealed = seal(TOKEN)
    flipped = "A" if sealed[position] != "A" else "B"
    index = position % len(sealed)
    tampered = sealed[:index] + flipped + sealed[index + 1 :]
    with pytest.raises(SealedValueError):
        unseal(tampered)


@pytest.mark.parametrize("junk", [None, 42, ("ok", TOKEN), TOKEN, "", "gAAAAA", "é"])
def test_what_was_not_sealed_does_not_open(junk: Any) -> None:
    with pytest.raises(SealedValueError):
        unseal(junk)


def test_token_keys_are_not_the_client_secret_keys(settings: Any) -> None:
    """One purpose per key: a sealed token is no client secret, and the other way round."""
    keys(settings, Fernet.generate_key().decode())
    with pytest.raises(SecretDecryptionError):
        encryption.decrypt(seal(TOKEN))
    with pytest.raises(SealedValueError):
        unseal(encryption.encrypt("client-secret"))


def test_without_encryption_keys_tokens_use_a_key_derived_from_secret_key(settings: Any) -> None:
    no_keys(settings)
    sealed = seal(TOKEN)
    assert unseal(sealed) == TOKEN
    # Client secrets never fall back to SECRET_KEY: they still need ENCRYPTION_KEYS.
    with pytest.raises(ImproperlyConfigured):
        encryption.encrypt("client-secret")
    derived = encryption.derive_token_key(settings.SECRET_KEY)
    assert len(base64.urlsafe_b64decode(derived)) == 32
    assert settings.SECRET_KEY.encode() not in derived
    # Only the derived key opens it (HKDF with the purpose-specific info), not SECRET_KEY's bytes as a key.
    raw = Fernet(base64.urlsafe_b64encode(settings.SECRET_KEY.encode().ljust(32, b"\0")[:32]))
    with pytest.raises(InvalidToken):
        raw.decrypt(sealed.encode())
    assert Fernet(derived).decrypt(sealed.encode())


def test_derivation_depends_on_the_purpose() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    other = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"another purpose").derive(b"k")
    assert encryption.derive_token_key("k") != base64.urlsafe_b64encode(other)
    assert encryption.derive_token_key("k") == encryption.derive_token_key(b"k")
    assert encryption.derive_token_key("k") != encryption.derive_token_key("k2")
