"""The shared JWKS store: cached across workers, refetched on an unknown kid, rate-limited."""

from __future__ import annotations

from typing import Any

import pytest

from django_duo_oidc.core import errors
from django_duo_oidc.core.jwks import JWKSStore, KeySet
from tests.fakeop import FakeOP, public_jwk, rsa_key

from .helpers import ISSUER, DictCache, fake_http, jwks


def store(op: FakeOP, cache: DictCache) -> JWKSStore:
    """One worker process: its local copy of the keys is kept on the test's clock."""
    return JWKSStore(
        fake_http(op), f"{ISSUER}/jwks", cache, ttl=3600, refetch_interval=60, local_ttl=30, clock=lambda: cache.now
    )


class CountingCache(DictCache):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.gets += 1
        return super().get(key, default)


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


def test_a_process_uses_its_own_copy_without_asking_the_shared_cache() -> None:
    op, cache = FakeOP(), CountingCache()
    worker = store(op, cache)
    worker.key_for(op.kid, "RS256")
    reads = cache.gets
    for _ in range(10):
        worker.key_for(op.kid, "RS256")
    assert cache.gets == reads
    cache.now += 31  # the local copy is old: read the shared cache again (no provider call)
    worker.key_for(op.kid, "RS256")
    assert cache.gets == reads + 1
    assert jwks_calls(op) == 1


def test_a_key_another_worker_fetched_is_found_in_the_shared_cache_without_refetching() -> None:
    op, cache = FakeOP(), DictCache()
    store(op, cache).key_for(op.kid, "RS256")  # this worker's copy holds the old key
    op.kid = "rotated"
    JWKSStore.forget_all()  # another process: it has no local copy
    store(op, cache).refresh()  # ... and fetched the rotated keys into the shared cache
    cache.add(store(op, cache).cache_key + ":refetch", 1, 60)  # the refetch budget is spent
    JWKSStore._parsed[store(op, cache).cache_key] = (  # back to the first process's stale copy
        "old",
        KeySet(jwks(None)),
        cache.now,
    )
    assert store(op, cache).key_for("rotated", "RS256") is not None
    assert jwks_calls(op) == 2


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
