"""Compact JWS (RFC 7515 section 7.1), parsed once and strictly.

A bearer request pays for every microsecond here, so a token is split and decoded exactly once
(PyJWT's ``get_unverified_header`` followed by ``decode`` parses it twice) and the signature is
checked with PyJWT's algorithm implementations, not with code of our own.

What is refused, and why:
- anything but three base64url segments without padding (RFC 7515 section 2, "base64url");
- a header or payload that is not a JSON object, or not UTF-8 (RFC 7515 section 5.2 step 3-4);
- a header with ``crit``: we implement no extension, so we must reject it (section 4.1.11);
- ``jku``/``x5u``/``jwk``/``x5c`` are ignored: keys come only from the provider's JWKS
  (RFC 8725 section 3.10), never from the token that is being checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms

from .errors import BadSignature, MalformedToken

__all__ = ["JWS", "MAX_TOKEN_LENGTH", "looks_like_jws", "parse", "verify"]

# A JWT larger than this is refused before any parsing: no real ID or access token comes near it.
MAX_TOKEN_LENGTH = 16_384

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_ALGORITHMS = get_default_algorithms()
# RFC 7518 section 3.4 / RFC 8037: the curve an EC algorithm is defined for.
_CURVE_FOR_ALG = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}


@dataclass(frozen=True, slots=True)
class JWS:
    """A parsed, not yet verified, compact JWS."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def looks_like_jws(token: str) -> bool:
    """True when ``token`` has the shape of a compact JWS (an opaque token usually has no dots)."""
    return token.count(".") == 2


def parse(token: Any) -> JWS:
    """Split and decode a compact JWS; raise :class:`MalformedToken` for anything else."""
    if not isinstance(token, str) or not token:
        raise MalformedToken("No token was given.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedToken("The token is too large.")
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise MalformedToken()
    header_b64, payload_b64, signature_b64 = parts
    header = _json_object(header_b64)
    if not isinstance(header.get("alg"), str):
        raise MalformedToken("The token header has no algorithm.")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise MalformedToken("The token header's kid is not a string.")
    if "crit" in header:
        raise MalformedToken("The token uses a critical header extension this site does not support.")
    claims = _json_object(payload_b64)
    return JWS(header, claims, f"{header_b64}.{payload_b64}".encode("ascii"), _b64decode(signature_b64))


def verify(jws: JWS, key: Any, alg: str) -> None:
    """Check the signature with ``key`` (a ``cryptography`` public key) for ``alg``; raise BadSignature."""
    algorithm = _ALGORITHMS.get(alg)
    if algorithm is None or not jws.signature:
        raise BadSignature()
    expected_curve = _CURVE_FOR_ALG.get(alg)
    if expected_curve is not None and getattr(getattr(key, "curve", None), "name", None) != expected_curve:
        raise BadSignature("The key's curve does not match the token's algorithm.")
    try:
        valid = algorithm.verify(jws.signing_input, key, jws.signature)
    except (ValueError, TypeError, AttributeError) as exc:
        # A key of another type than the algorithm expects: never a valid signature.
        raise BadSignature() from exc
    if not valid:
        raise BadSignature()


def _b64decode(segment: str) -> bytes:
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise MalformedToken()
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken() from exc


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken() from exc
    if not isinstance(value, dict):
        raise MalformedToken()
    return value
