"""Final adversarial review of issues 10 and 11: what was still broken in the final state."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin as django_admin
from django.test import Client, RequestFactory

from django_duo_oidc.models import Provider, ScopeRule
from django_duo_oidc.policy.rules import policy_rules, reset_policy_cache
from django_duo_oidc.resource import identities as resource_identities
from tests.fakeop import FakeOP

from .test_hardening_bearer import get, issue, link

pytestmark = pytest.mark.django_db


def test_a_deactivation_saved_while_the_link_is_being_read_is_not_lost(
    client: Client, fake_op: FakeOP, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two threads of one process: request A reads the identity link (user active); before it stores
    # what it read, an admin request in another thread saves the user as inactive, and post_save
    # forgets the remembered links. A then stores its stale "active" answer for USER_TTL: the
    # deactivation, saved in this very process, does not take effect at once (SECURITY.md says it does).
    user = link(provider)
    token = issue(fake_op)
    real = resource_identities.identity_link

    def racing(p: Provider, sub: str) -> Any:
        found = real(p, sub)
        user.is_active = False
        user.save()  # the other thread's save lands between the read and the store
        return found

    monkeypatch.setattr(resource_identities, "identity_link", racing)
    get(client, "/t/bearer/hot/", token)  # already underway when the user was deactivated: either answer
    monkeypatch.setattr(resource_identities, "identity_link", real)
    # The save has completed: from now on the token must be refused.
    assert get(client, "/t/bearer/hot/", token).status_code == 401


def test_deleting_scope_rules_with_the_admin_action_takes_effect_at_once_in_this_process() -> None:
    # ScopeRuleAdmin resets the memo on save and on the one-object delete ("this process at once"), but
    # the changelist's "Delete selected scope rules" action goes through delete_queryset, which did not.
    rule = ScopeRule.objects.create(path_prefix="/final-review/", scopes="crm.admin")
    reset_policy_cache()
    assert any(prefix == "/final-review/" for prefix, _, _ in policy_rules())
    model_admin = django_admin.site._registry[ScopeRule]
    model_admin.delete_queryset(RequestFactory().post("/"), ScopeRule.objects.filter(pk=rule.pk))
    assert not any(prefix == "/final-review/" for prefix, _, _ in policy_rules())


def _proxy_user_model() -> Any:
    """A proxy of the user model, as projects declare to give staff users their own admin page."""
    from django.apps import apps
    from django.contrib.auth import get_user_model

    try:
        return apps.get_model("auth", "FinalReviewEmployee")
    except LookupError:
        pass

    class FinalReviewEmployee(get_user_model()):  # type: ignore[misc]
        class Meta:
            proxy = True
            app_label = "auth"

    return FinalReviewEmployee


def test_a_user_deactivated_through_a_proxy_model_is_refused_at_once(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # post_save's sender is the class saved: a proxy of the user model (an "Employee" admin page) is not
    # settings.AUTH_USER_MODEL, so apps.py's receivers never heard of the deactivation and the token
    # stayed good for USER_TTL in the very process that saved the user.
    user = link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/hot/", token).status_code == 200
    employee = _proxy_user_model().objects.get(pk=user.pk)
    employee.is_active = False
    employee.save()
    assert get(client, "/t/bearer/hot/", token).status_code == 401


def test_a_re_linked_or_unlinked_identity_takes_effect_at_once_in_this_process(
    client: Client, fake_op: FakeOP, provider: Provider
) -> None:
    # Examined (not a defect): Identity saves and deletes (and a user's cascade) forget the memo at once.
    from django.contrib.auth import get_user_model

    from django_duo_oidc.models import Identity

    link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/any/", token).json()["user"] == "alice"
    bob = get_user_model().objects.create_user(username="bob")
    identity = Identity.objects.get(provider=provider, sub="alice-sub")
    identity.user = bob
    identity.save()
    assert get(client, "/t/bearer/any/", token).json()["user"] == "bob"
    Identity.objects.filter(pk=identity.pk).delete()  # a queryset delete sends post_delete too
    assert get(client, "/t/bearer/any/", token).json()["user"] is None
    Identity.objects.create(provider=provider, sub="alice-sub", user=bob)
    assert get(client, "/t/bearer/any/", token).json()["user"] == "bob"
    bob.delete()
    response = get(client, "/t/bearer/any/", token)
    assert response.status_code == 200 and response.json()["user"] is None


def test_a_link_remembered_from_before_the_deactivation_committed_is_forgotten_at_commit(
    client: Client, fake_op: FakeOP, provider: Provider, django_capture_on_commit_callbacks: Any
) -> None:
    """post_save runs before the commit: a request in another thread that reads the identity meanwhile
    sees the old, still active row and remembers it. The memo is cleared again when the save commits."""
    import time

    user = link(provider)
    token = issue(fake_op)
    assert get(client, "/t/bearer/any/", token).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        user.is_active = False
        user.save()
        # Another thread, reading the last committed row (still active), remembers it meanwhile.
        resource_identities._users[(provider.pk, "alice-sub")] = (user.pk, True, time.monotonic() + 60)
    assert get(client, "/t/bearer/any/", token).status_code == 401
