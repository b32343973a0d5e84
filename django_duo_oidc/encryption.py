"""Client secrets at rest: Fernet encryption with rotatable keys (``DUO_OIDC["ENCRYPTION_KEYS"]``)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.exceptions import ImproperlyConfigured

from .conf import conf

__all__ = ["SecretDecryptionError", "decrypt", "encrypt", "rotate"]


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


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
