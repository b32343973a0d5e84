"""The shared JWKS store: cached across workers, refetched on an unknown kid, rate-limited."""

from __future__ import annotations

import pytest

from django_duo_oidc.core import errors
from django_duo_oidc.core.jwks import JWKSStore, KeySet
from tests.fakeop import FakeOP, public_jwk, rsa_key

from .helpers import ISSUER, DictCache, fake_http


def store(op: FakeOP, cache: DictCache) -> JWKSStore:
    return JWKSStore(fake_http(op), f"{ISSUER}/jwks", cache, ttl=3600, refetch_interval=60)


def jwks_calls(op: FakeOP) -> int:
    return sum(1 for _method, name in op.calls if name == "jwks")


def test_one_fetch_serves_every_worker_sharing_the_cache() -> None:
    op, cache = FakeOP(), DictCache()
    for _ in range(5):
        assert store(op, cache).key_for(op.kid, "RS256") is not None
    assert jwks_calls(op) == 1


def test_rotated_key_is_found_by_one_refetch() -> None:
    op, cache = FakeOP(), DictCache()
    store(op, cache).key_for(op.kid, "RS256")
    op.kid = "rotated"
    assert store(op, cache).key_for("rotated", "RS256") is not None
    assert jwks_calls(op) == 2


def test_unknown_kids_refetch_at_most_once_per_interval() -> None:
    op, cache = FakeOP(), DictCache()
    store(op, cache).key_for(op.kid, "RS256")
    for i in range(20):
        with pytest.raises(errors.UnknownKey):
            store(op, cache).key_for(f"forged-{i}", "RS256")
    assert jwks_calls(op) == 2  # the first fetch, and one refetch for all twenty forgeries
    cache.now += 61
    with pytest.raises(errors.UnknownKey):
        store(op, cache).key_for("forged-late", "RS256")
    assert jwks_calls(op) == 3


def test_cache_expiry_fetches_again() -> None:
    op, cache = FakeOP(), DictCache()
    store(op, cache).key_for(op.kid, "RS256")
    cache.now += 3601
    store(op, cache).key_for(op.kid, "RS256")
    assert jwks_calls(op) == 2


def test_jwks_without_keys_list_is_a_provider_error() -> None:
    with pytest.raises(errors.ProviderResponseError):
        KeySet({"nope": []})


def test_unusable_entries_do_not_hide_good_keys() -> None:
    good = public_jwk(rsa_key(), "good")
    keys = KeySet({"keys": [{"kty": "RSA", "kid": "broken", "n": "!!"}, {"kty": "oct", "k": "AAAA"}, good]})
    assert keys.kids == ["good"]
    assert keys.find("good", "RS256") is not None


def test_encryption_keys_are_not_used_for_signatures() -> None:
    enc = {**public_jwk(rsa_key(), "enc"), "use": "enc"}
    with pytest.raises(errors.UnknownKey):
        KeySet({"keys": [enc]}).find("enc", "RS256")


def test_key_with_other_alg_does_not_verify_this_alg() -> None:
    keys = KeySet({"keys": [{**public_jwk(rsa_key(), "k"), "alg": "RS512"}]})
    with pytest.raises(errors.UnknownKey):
        keys.find("k", "RS256")
    assert keys.find("k", "RS512") is not None
