"""The authentication backend: a mozilla-django-oidc backend whose settings come from a Provider row.

mozilla's hooks are kept (``verify_claims``, ``filter_users_by_claims``, ``create_user``,
``update_user``, ``get_userinfo``, ``get_or_create_user``, ``get_username``) so projects override
them as they would with mozilla. Replaced: its flat ``OIDC_*`` settings, its ID-token check (which
skips ``aud`` and ``iss``), its user lookup by email, and its inline HTTP calls.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from ..core.claims import map_claims, matching_rules
from ..core.errors import InvalidClaim, LoginRefused
from ..core.flow import TokenSet
from ..models import GroupRule, Identity, Provider
from ..providers.runtime import ProviderRuntime

if TYPE_CHECKING:
    # django-stubs' name for the site's user model (AUTH_USER_MODEL); its mypy plugin resolves it.
    from django.contrib.auth.models import _User as SiteUser

logger = logging.getLogger("django_duo_oidc")

# ID-token claims that userinfo may not override (OIDC Core section 5.3.2: userinfo is about the
# same sub; the security-relevant claims come from the signed ID token only).
_ID_TOKEN_ONLY = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "azp", "auth_time", "at_hash", "acr", "amr", "sid"}
)


@dataclass
class LoginAttempt:
    """What the callback view hands to the backend; the backend fills in the outcome."""

    provider: Provider
    code: str
    redirect_uri: str
    nonce: str
    code_verifier: str
    max_age: int | None = None
    tokens: TokenSet | None = field(default=None, repr=False)
    claims: dict[str, Any] = field(default_factory=dict, repr=False)
    scopes: frozenset[str] = frozenset()


def _says_unverified(claims: dict[str, Any]) -> bool:
    """True when the claims state the email is not verified (absent: Duo sends none, not unverified)."""
    verified = claims.get("email_verified")
    return verified is False or (isinstance(verified, str) and verified.strip().lower() == "false")


#: The claims kept on the identity for a directory sync's join key (issue 12), and their length bound.
JOIN_CLAIMS = ("email", "preferred_username")
JOIN_CLAIM_MAX = 255


def join_claims(claims: dict[str, Any], previous: Any = None) -> dict[str, Any]:
    """The join claims of a login, for ``Identity.last_claims``: strings only, cut to 255 characters.

    An email the provider calls unverified (``email_verified: false``, OIDC Core 5.1) is recorded as
    such (``"email_verified": False``): a directory never joins by it, so nobody gains a Duo user's groups
    by claiming their address. The mark outlives a later login that sends no email at all (``previous``:
    the identity's ``last_claims`` so far): that login leaves the unverified address on the Django user
    (absent claims change no field), and a join falling back to the user's email must not take it.
    """
    kept: dict[str, Any] = {
        name: value[:JOIN_CLAIM_MAX] for name in JOIN_CLAIMS if isinstance(value := claims.get(name), str) and value
    }
    if _says_unverified(claims):
        kept["email_verified"] = False
    elif (
        "email" not in kept
        and "email_verified" not in claims
        and isinstance(previous, dict)
        and previous.get("email_verified") is False
    ):
        kept["email_verified"] = False  # nothing said about the address this time: it stays unverified
        if isinstance(previous.get("email"), str):
            kept["email"] = previous["email"][:JOIN_CLAIM_MAX]
    return kept


def _is_privileged(user: SiteUser) -> bool:
    return bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))


class DuoOIDCBackend(OIDCAuthenticationBackend):
    """Authenticate a user from a Duo authorization code; link users by (provider, sub)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # mozilla's __init__ reads its flat OIDC_* settings; ours come from the Provider row.
        self.UserModel = get_user_model()
        self.provider: Provider | None = None
        self.runtime: ProviderRuntime | None = None

    @sensitive_variables()  # the code and the tokens (auth.authenticate hides only `credentials`)
    # Keyword-only credential (not Django's **credentials): password logins never reach this backend.
    def authenticate(  # type: ignore[override]
        self, request: HttpRequest | None, *, duo_oidc_login: LoginAttempt
    ) -> SiteUser | None:
        """Redeem the code, validate the ID token and userinfo, and return the linked user.

        The credential is keyword-only, so password logins never reach this backend. Failures raise
        a :class:`~django_duo_oidc.core.errors.DuoOIDCError` with the reason, for the view to report.
        """
        attempt = duo_oidc_login
        self.request = request
        self.provider = attempt.provider
        self.runtime = ProviderRuntime(attempt.provider)
        tokens = self.runtime.exchange_code(
            code=attempt.code, redirect_uri=attempt.redirect_uri, code_verifier=attempt.code_verifier
        )
        assert tokens.id_token is not None  # exchange_code refuses a response without one
        claims = self.runtime.validate_id_token(
            tokens.id_token, nonce=attempt.nonce, max_age=attempt.max_age, access_token=tokens.access_token
        )
        userinfo = self.get_userinfo(tokens.access_token, tokens.id_token, claims)
        if userinfo is not None:
            if userinfo.get("sub") != claims["sub"]:
                # OIDC Core section 5.3.2: the userinfo sub MUST be verified to match the ID token's.
                raise InvalidClaim("sub", "The userinfo answer is about another user than the ID token.")
            claims = {**claims, **{k: v for k, v in userinfo.items() if k not in _ID_TOKEN_ONLY}}
        if not self.verify_claims(claims):
            raise LoginRefused("Your account does not meet this site's requirements.")
        attempt.tokens = tokens
        attempt.claims = claims
        attempt.scopes = self.runtime.granted_scopes(tokens)
        return self.get_or_create_user(tokens.access_token, tokens.id_token, claims)

    def get_user(self, user_id: Any) -> SiteUser | None:
        """Return the session's user, or None when it no longer exists or may not log in.

        mozilla's ``get_user`` skips ``user_can_authenticate``; Django's ``ModelBackend`` (our base) checks
        it, so a user deactivated in Django loses the session on the next request.
        """
        return ModelBackend.get_user(self, user_id)

    # mozilla hooks, re-aimed -----------------------------------------------------------------

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Return the userinfo claims, or None when the provider does not use userinfo."""
        assert self.runtime is not None
        return self.runtime.userinfo(access_token)

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        """Decide whether these (validated) claims may log in. Duo sends no email_verified: not required."""
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        """Return the users an identity with these claims may be linked to by email.

        Used only by ``link_existing_by_email`` on first login. The address must be one only trusted
        parties vouched for (see :meth:`may_link`): users with an identity of a provider that is not
        trusted for linking are left out, so an account pre-registered there with someone else's
        address is neither linked nor makes the real one ambiguous. An address the provider says is
        unverified (``email_verified: false``, OIDC Core 5.1) links nothing.
        """
        email = claims.get((self.provider.email_claim if self.provider else "") or "email")
        if not isinstance(email, str) or not email or _says_unverified(claims):
            return self.UserModel.objects.none()
        return self.UserModel.objects.filter(email__iexact=email).exclude(
            duo_identities__provider__link_existing_by_email=False
        )

    def may_link(self, user: SiteUser, claims: dict[str, Any]) -> bool:
        """Whether an identity with ``claims`` may be linked to ``user`` by email.

        The rule (issue 10, account pre-hijacking): the user's address was set by an administrator
        (no identity at all) or asserted only by providers trusted for linking
        (``link_existing_by_email``), and these claims do not call the address unverified. Checked
        here again whatever ``filter_users_by_claims`` (a mozilla hook projects override) returned.
        """
        if _says_unverified(claims):
            return False
        return not Identity.objects.filter(user=user, provider__link_existing_by_email=False).exists()

    def describe_user_by_claims(self, claims: dict[str, Any]) -> str:
        return f"subject {claims.get('sub')!r} of provider {self.provider.slug if self.provider else '?'}"

    def get_username(self, claims: dict[str, Any]) -> str:
        """Return a free username from the mapped claims, or one derived from (issuer, sub)."""
        assert self.provider is not None
        fields = map_claims(claims, self.provider.claim_mapping())
        digest = hashlib.sha256(f"{self.provider.issuer}|{claims['sub']}".encode()).hexdigest()
        base = fields.username or f"duo-{digest[:20]}"
        if not self.UserModel._default_manager.filter(**{self.UserModel.USERNAME_FIELD: base}).exists():
            return base
        # Taken by someone else: never reuse another account; make this one distinct and stable.
        return f"{base[: 150 - 9]}-{digest[:8]}"

    def create_user(self, claims: dict[str, Any]) -> SiteUser:
        """Create a user for a new identity (no usable password: they log in through the provider)."""
        assert self.provider is not None
        fields = map_claims(claims, self.provider.claim_mapping())
        user = self.UserModel(**{self.UserModel.USERNAME_FIELD: self.get_username(claims)})
        user.email = fields.email or ""
        user.first_name = fields.first_name or ""
        user.last_name = fields.last_name or ""
        user.set_unusable_password()
        user.save()
        logger.info("Created user %s for %s", user.pk, self.describe_user_by_claims(claims))
        return user

    def update_user(self, user: SiteUser, claims: dict[str, Any]) -> SiteUser:
        """Keep username, email and names current from the claims (absent claims change nothing)."""
        assert self.provider is not None
        fields = map_claims(claims, self.provider.claim_mapping())
        changed: list[str] = []
        for name in ("email", "first_name", "last_name"):
            value = getattr(fields, name)
            if value is not None and getattr(user, name, None) != value:
                setattr(user, name, value)
                changed.append(name)
        username_field = self.UserModel.USERNAME_FIELD
        if (
            fields.username
            and user.get_username() != fields.username
            and not self.UserModel._default_manager.filter(**{username_field: fields.username}).exists()
        ):
            setattr(user, username_field, fields.username)
            changed.append(username_field)
        if changed:
            user.save(update_fields=changed)
        return user

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> SiteUser:
        """Return the user linked to (provider, sub), linking or creating one on first login."""
        assert self.provider is not None
        claims = payload
        identity = Identity.objects.select_related("user").filter(provider=self.provider, sub=claims["sub"]).first()
        if identity is None:
            identity = self._link_new_identity(claims)
        user = identity.user
        if not self.user_can_authenticate(user):
            raise LoginRefused("This account is disabled on this site.")
        user = self.update_user(user, claims)
        self.update_user_groups(user, identity, claims)
        identity.last_login_at = timezone.now()
        identity.last_claims = join_claims(claims, identity.last_claims)
        identity.save(update_fields=["last_login_at", "granted_staff", "last_claims"])
        return user

    def _link_new_identity(self, claims: dict[str, Any]) -> Identity:
        assert self.provider is not None
        user = None
        if self.provider.link_existing_by_email:
            candidates = [u for u in self.filter_users_by_claims(claims)[:20] if self.may_link(u, claims)][:2]
            if any(_is_privileged(u) for u in candidates):
                # Staff and superusers are never linked by an email claim: one mistake in a provider's
                # directory would hand over the admin. An administrator links them (an Identity row).
                raise LoginRefused(
                    "The account with your email address can only be linked by an administrator on this site."
                )
            if len(candidates) > 1:
                raise LoginRefused("Several accounts on this site have your email address; ask an administrator.")
            if candidates:
                user = candidates[0]
                if Identity.objects.filter(provider=self.provider, user=user).exists():
                    # That account already belongs to another identity of this provider.
                    raise LoginRefused("The account with your email address is linked to another identity.")
        if user is None:
            if not self.provider.create_users:
                raise LoginRefused("There is no account for you on this site, and this site does not create accounts.")
            user = self.create_user(claims)
        try:
            with transaction.atomic():
                return Identity.objects.create(provider=self.provider, sub=claims["sub"], user=user)
        except IntegrityError:
            # A parallel first login of the same identity won the race: use its link.
            return Identity.objects.select_related("user").get(provider=self.provider, sub=claims["sub"])

    def update_user_groups(self, user: SiteUser, identity: Identity, claims: dict[str, Any]) -> None:
        """Apply the provider's group rules: add matching groups, remove only groups this app added."""
        assert self.provider is not None
        rules = list(GroupRule.objects.filter(provider=self.provider).select_related("group"))
        matched = matching_rules(claims, rules)
        wanted = {r.group for r in matched if r.group is not None}
        current = set(user.groups.all())
        managed = set(identity.managed_groups.all())
        to_add = wanted - current
        to_remove = (managed - wanted) & current
        if to_add:
            user.groups.add(*to_add)
            identity.managed_groups.add(*to_add)
        if to_remove:
            user.groups.remove(*to_remove)
        if managed - wanted:
            identity.managed_groups.remove(*(managed - wanted))
        self.update_user_flags(user, identity, any(r.staff for r in matched))

    def update_user_flags(self, user: SiteUser, identity: Identity, staff: bool) -> None:
        """Grant is_staff while a staff rule matches; take it back only if this app granted it."""
        if staff and not user.is_staff:
            user.is_staff = True
            identity.granted_staff = True
            user.save(update_fields=["is_staff"])
        elif not staff and identity.granted_staff:
            user.is_staff = False
            identity.granted_staff = False
            user.save(update_fields=["is_staff"])
