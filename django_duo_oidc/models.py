"""Providers, the identities linked to users, and group rules, all managed in the Django admin.

Over 300 lines on purpose: Django reads an app's tables from one ``models`` module, and the
validation of a provider row (issuer, secret source, connection changes) belongs with the row.
"""

from __future__ import annotations

import os
import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models, transaction
from django.utils.translation import gettext_lazy as _

from .conf import conf
from .core.claims import ClaimMapping, glob_matches_any_value
from .core.discovery import METADATA_ENDPOINTS, check_issuer, duo_api_host_refusal, is_plain_http_under_https
from .core.errors import ConfigurationError, SecretUnavailable
from .core.flow import AuthMethod as TokenAuthMethod
from .core.flow import ClientCredentials
from .core.resources import parse_resource_indicators, resource_indicator_problem
from .core.scopes import parse_scopes
from .state.encryption import SecretDecryptionError, decrypt, encrypt

# Endpoints are http(s) URLs only (CharField + this validator: a URLField would also take ftp://).
_HTTP_URL = URLValidator(schemes=["https", "http"])

# A POSIX environment variable name (portable character set, not starting with a digit).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def secret_env_refusal(name: str) -> str | None:
    """Why ``name`` may not hold a client secret, or None when it may (``SECRET_ENV_PREFIXES``)."""
    prefixes = conf.secret_env_prefixes
    if not _ENV_NAME.fullmatch(name):
        return "An environment variable name has letters, digits and underscores only."
    if not any(name.startswith(p) and len(name) > len(p) for p in prefixes):
        allowed = ", ".join(f"{p}..." for p in prefixes) or "none (DUO_OIDC['SECRET_ENV_PREFIXES'] is empty)"
        return f"Only environment variables named {allowed} may hold a client secret (DUO_OIDC['SECRET_ENV_PREFIXES'])."
    return None


def read_secret(env_name: str, encrypted: str, *, variable: str, secret: str, missing: str) -> str:
    """A secret named by an environment variable (preferred) or stored encrypted, for every row that holds
    one (providers, directory connections, the second factor).

    Checked at use time too (fail closed): a row written around validation, or a setting narrowed since,
    must not send an arbitrary variable's value anywhere. ``variable`` names the field in messages ("The
    provider's client-secret variable"), ``secret`` the secret ("client secret"), ``missing`` the message
    when there is none.

    :raises SecretUnavailable: a variable not allowed or not set, an undecryptable value, or none (a
        :class:`~django_duo_oidc.core.errors.ConfigurationError`).
    """
    if env_name:
        refusal = secret_env_refusal(env_name)
        if refusal:
            raise SecretUnavailable(f"{variable} {env_name} is not allowed. {refusal}")
        value = os.environ.get(env_name, "")
        if not value:
            raise SecretUnavailable(f"The environment variable {env_name} holding the {secret} is not set.")
        return value
    if encrypted:
        try:
            return decrypt(encrypted)
        except SecretDecryptionError as exc:
            raise SecretUnavailable(str(exc)) from exc
    raise SecretUnavailable(missing)


def describe_secret(env_name: str, encrypted: str) -> str:
    """Where a secret comes from, without revealing it (nor whether a variable not allowed is set)."""
    if env_name:
        if secret_env_refusal(env_name):
            return f"environment variable {env_name} (not allowed: see SECRET_ENV_PREFIXES)"
        state = "set" if os.environ.get(env_name) else "NOT SET"
        return f"environment variable {env_name} ({state})"
    if encrypted:
        return "stored encrypted"
    return "none"


#: The fields that decide where the client secret is sent, which tokens count, and who an identity
#: becomes: changing them needs the ``duo_oidc.change_provider_connection`` permission in the admin.
CONNECTION_FIELDS = (
    "issuer",
    "client_id",
    "client_secret_env",
    "token_auth_method",
    "allowed_algorithms",
    "create_users",
    "link_existing_by_email",
    "email_claim",
    "access_token_validation",
    "introspect",  # in auto mode it decides jwt vs jwt+introspection; for sessions, whether revocations are seen
    "access_token_audiences",
    "access_token_require_audience",
    "machine_clients",
    "resource_indicators",
    "introspect_with",
    # Endpoints set by hand: where the client secret and tokens are sent, and which keys are trusted.
    *METADATA_ENDPOINTS,
)

#: Endpoints set by hand that receive the client secret: changing one is like changing the issuer.
SECRET_ENDPOINT_FIELDS = ("token_endpoint", "introspection_endpoint", "revocation_endpoint")

#: Every endpoint a provider row may set by hand, as named in the metadata (RFC 8414, Discovery).
ENDPOINT_FIELDS = METADATA_ENDPOINTS
# Provider.token_auth_method's choices, as the core's type of them.
_TOKEN_AUTH_METHODS: dict[str, TokenAuthMethod] = {
    "client_secret_basic": "client_secret_basic",
    "client_secret_post": "client_secret_post",
}


class Provider(models.Model):
    """An OpenID provider (a Duo SSO application) and how this site uses it."""

    class AuthMethod(models.TextChoices):
        BASIC = "client_secret_basic", "client_secret_basic (HTTP Basic)"
        POST = "client_secret_post", "client_secret_post (form body)"

    class AccessTokenValidation(models.TextChoices):
        AUTO = "auto", _("automatic: jwt+introspection when the provider advertises introspection, else jwt")
        JWT = "jwt", _("jwt: signature and claims checked locally, no provider call")
        INTROSPECTION = "introspection", _("introspection: ask the provider (also for opaque tokens)")
        JWT_INTROSPECTION = "jwt+introspection", _("jwt+introspection: local checks, then the provider once a window")
        OFF = "off", _("off: bearer tokens of this provider are refused")

    class Prompt(models.TextChoices):
        NONE = "", _("(not sent)")
        LOGIN = "login", "login"
        CONSENT = "consent", "consent"
        SELECT_ACCOUNT = "select_account", "select_account"

    slug = models.SlugField(unique=True, help_text=_("Used in URLs: /oidc/login/?provider=<slug>."))
    name = models.CharField(max_length=100, help_text=_("Shown on the login button."))
    issuer = models.CharField(
        max_length=500,
        validators=[URLValidator(schemes=["https", "http"])],
        help_text=_(
            "Copy it from the Duo application's Metadata tab, e.g. https://sso-xxx.sso.duosecurity.com/oidc/DI…"
        ),
    )
    client_id = models.CharField(max_length=255)
    client_secret_env = models.CharField(
        max_length=255,
        blank=True,
        help_text=_("Name of an environment variable holding the client secret (preferred)."),
    )
    client_secret_encrypted = models.TextField(blank=True, editable=False)
    token_auth_method = models.CharField(max_length=32, choices=AuthMethod.choices, default=AuthMethod.BASIC)
    scopes = models.CharField(
        max_length=500,
        default="openid profile email",
        help_text=_("Space-separated scopes requested at login; openid is always added."),
    )
    introspect = models.BooleanField(
        default=True,
        help_text=_(
            "Check with the provider's introspection endpoint, once per freshness window, that a session's "
            "token is still active and which scopes it still has."
        ),
    )
    use_userinfo = models.BooleanField(
        default=True, help_text=_("Also read claims from the userinfo endpoint at login.")
    )
    allowed_algorithms = models.CharField(
        max_length=100,
        default="RS256",
        help_text=_("Space-separated signing algorithms accepted for tokens (asymmetric only)."),
    )
    prompt = models.CharField(max_length=20, blank=True, choices=Prompt.choices, default=Prompt.NONE)
    max_age = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Seconds; if set, an older Duo authentication is refused.")
    )
    # Claims onto users
    username_claims = models.CharField(
        max_length=200,
        default="preferred_username email",
        help_text=_("Claims tried in order for the username; Duo usually sends only email."),
    )
    email_claim = models.CharField(max_length=100, default="email", blank=True)
    first_name_claim = models.CharField(max_length=100, default="given_name", blank=True)
    last_name_claim = models.CharField(max_length=100, default="family_name", blank=True)
    create_users = models.BooleanField(default=True, help_text=_("Create a user on first login."))
    link_existing_by_email = models.BooleanField(
        default=False,
        help_text=_(
            "On the first login of an identity, link an existing user with the same email. Only enable this "
            "when the provider is trusted to own those addresses: a reused email would take over the account."
        ),
    )
    access_token_validation = models.CharField(
        max_length=20,
        choices=AccessTokenValidation.choices,
        default=AccessTokenValidation.AUTO,
        help_text=_("How bearer access tokens sent to this site's APIs are validated."),
    )
    access_token_audiences = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("Space-separated audiences accepted in access tokens (aud). Empty: the client id, as Duo sets it."),
    )
    access_token_require_audience = models.BooleanField(
        default=True,
        help_text=_(
            "Introspection: accept a token only when its audience (the answer's aud or client_id, or the JWT's own "
            "aud) is one of the accepted audiences. Turn off only when this authorization server issues tokens for "
            "this site alone: one Duo authorization server can serve several clients."
        ),
    )
    machine_clients = models.CharField(
        max_length=500,
        blank=True,
        help_text=_(
            "Space-separated subjects (sub) or client ids (client_id / azp) of machine clients, e.g. a Keycloak "
            "service account: their tokens are a client calling for itself, never a user."
        ),
    )
    end_session = models.BooleanField(
        default=False,
        help_text=_("On logout, also end the session at the provider if it advertises end_session_endpoint."),
    )
    # Endpoints set by hand (blank: from the provider's metadata). For servers that publish no discovery
    # document, or leave an endpoint out of it (django-oauth-toolkit lists introspection only in its
    # RFC 8414 metadata, which is read too).
    authorization_endpoint = models.CharField(max_length=500, blank=True, validators=[_HTTP_URL])
    token_endpoint = models.CharField(max_length=500, blank=True, validators=[_HTTP_URL])
    jwks_uri = models.CharField(max_length=500, blank=True, validators=[_HTTP_URL], verbose_name="JWKS URI")
    userinfo_endpoint = models.CharField(max_length=500, blank=True, validators=[_HTTP_URL])
    introspection_endpoint = models.CharField(max_length=500, blank=True, validators=[_HTTP_URL])
    revocation_endpoint = models.CharField(max_length=500, blank=True, validators=[_HTTP_URL])
    end_session_endpoint = models.CharField(max_length=500, blank=True, validators=[_HTTP_URL])
    logout_id_token_hint = models.BooleanField(
        default=False,
        help_text=_(
            "With provider logout (end_session), send the login's ID token as id_token_hint (OIDC RP-Initiated "
            "Logout 1.0 recommends it; Glewlwyd and Keycloak do nothing without it). It then appears in the "
            "browser's address bar and history and in the provider's access log: the ID token is not a credential "
            "for APIs, but it names the user."
        ),
    )
    resource_indicators = models.CharField(
        max_length=500,
        blank=True,
        help_text=_(
            "Space-separated RFC 8707 resource indicators (absolute URIs) sent at login and on refresh, so that "
            "the provider issues access tokens whose audience is the downstream API the site calls for the user."
        ),
    )
    introspect_with = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_(
            "Another provider row whose introspection endpoint and client credentials introspect this provider's "
            "tokens (Duo's Global Token Introspection: one authorization server validates another's tokens)."
        ),
    )
    revoke_at_logout = models.BooleanField(
        default=True,
        help_text=_(
            "At logout, revoke the refresh token, then the access token, at the provider when it advertises a "
            "revocation endpoint (RFC 7009)."
        ),
    )
    browser_login = models.BooleanField(
        default=True,
        help_text=_(
            "Offer this provider for browser logins. Off for an authorization server used only to issue or "
            "validate tokens (Duo's client-credentials applications)."
        ),
    )
    backchannel_logout = models.BooleanField(
        default=True,
        help_text=_(
            "Accept OpenID Connect Back-Channel Logout tokens from this provider at "
            "/oidc/backchannel-logout/<slug>/ (give that URL to the provider): they end the user's sessions here."
        ),
    )
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text=_("Used when the login URL names no provider."))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_default", "name"]
        permissions = [
            (
                "change_provider_connection",
                "Can change a provider's connection (issuer, client, secret) and account linking",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def clean(self) -> None:
        super().clean()
        if self.issuer.endswith("/"):
            # The issuer must equal the discovery document's `issuer` exactly; Duo's has no slash.
            raise ValidationError({"issuer": _("Remove the trailing slash; Duo's issuer has none.")})
        try:
            check_issuer(self.issuer)
        except ConfigurationError as exc:
            raise ValidationError({"issuer": exc.description}) from exc
        for name in ("issuer", *ENDPOINT_FIELDS):
            refusal = duo_api_host_refusal(getattr(self, name))
            if refusal:
                raise ValidationError({name: refusal})
            if name != "issuer" and is_plain_http_under_https(self.issuer, getattr(self, name)):
                raise ValidationError(
                    {name: _("The issuer uses https: so must its endpoints (the secret, tokens and keys go there).")}
                )
        self._check_introspect_with()
        if self.client_secret_env:
            refusal = secret_env_refusal(self.client_secret_env)
            if refusal:
                raise ValidationError({"client_secret_env": refusal})
        self._check_secret_follows_connection()
        for value in parse_resource_indicators(self.resource_indicators):
            problem = resource_indicator_problem(value)
            if problem:
                raise ValidationError({"resource_indicators": problem})
        if "openid" not in parse_scopes(self.scopes):
            self.scopes = ("openid " + self.scopes).strip()

    def _check_introspect_with(self) -> None:
        """Global Token Introspection names another row: never this one, and never back round to it."""
        other = self.introspect_with
        if other is None:
            return
        if other.pk == self.pk or other.pk is None:
            raise ValidationError({"introspect_with": _("A provider cannot introspect its own tokens for itself.")})
        seen = {self.pk}
        while other is not None:
            if other.pk in seen:
                raise ValidationError(
                    {"introspect_with": _("These providers would introspect for each other in a circle.")}
                )
            seen.add(other.pk)
            other = other.introspect_with

    def confirm_secret_for_connection(self) -> None:
        """Say that the current secret may go to this (changed) issuer and client id: the admin's "send
        the secret to the new connection" box, or the command naming ``--client-secret-env`` again."""
        self._secret_confirmed = True

    def _check_secret_follows_connection(self) -> None:
        """A secret is not sent to another issuer or client by changing the URL next to it.

        Otherwise whoever may edit the issuer could point it at their own server and receive the
        secret in the next token request. A secret stored encrypted must be typed again; a secret read
        from an environment variable needs another variable or an explicit confirmation
        (:meth:`confirm_secret_for_connection`).
        """
        stored = (
            Provider.objects.filter(pk=self.pk)
            .values("issuer", "client_id", "client_secret_encrypted", "client_secret_env", *SECRET_ENDPOINT_FIELDS)
            .first()
            if self.pk
            else None
        )
        if stored is None or stored["client_secret_env"] != self.client_secret_env:
            self._check_variable_not_taken()
        watched = ("issuer", "client_id", *SECRET_ENDPOINT_FIELDS)
        if stored is None or all(stored[name] == getattr(self, name) for name in watched):
            return
        if self.client_secret_encrypted and stored["client_secret_encrypted"] == self.client_secret_encrypted:
            raise ValidationError(
                _(
                    "The issuer, client id or an endpoint receiving the secret changed: type the client secret "
                    "again (or clear the stored one). "
                    "The stored secret is not sent to another issuer or client."
                )
            )
        same_variable = self.client_secret_env and stored["client_secret_env"] == self.client_secret_env
        if same_variable and not getattr(self, "_secret_confirmed", False):
            raise ValidationError(
                _(
                    "The issuer, client id or an endpoint receiving the secret changed: confirm that the secret in "
                    "%(variable)s may be sent to the "
                    'new connection (in the admin, tick "send the secret to the new connection"; with duo_oidc_import, '
                    "add --send-secret-to-new-connection; with duo_oidc_provider, give --client-secret-env again), "
                    "or name another variable."
                )
                % {"variable": self.client_secret_env}
            )

    def _check_variable_not_taken(self) -> None:
        """A row that starts reading its secret from a variable (a new row, or another variable) whose
        secret belongs to another connection needs the same confirmation as a changed issuer.

        Otherwise a new row (or a renamed one, in an import with ``--prune``) naming an attacker's
        issuer and another row's variable would send that secret to the attacker's token endpoint, and
        "name another variable" would be the way round the confirmation. Rows of the same connection
        (issuer, client id and secret-receiving endpoints) may share a variable.
        """
        variable = self.client_secret_env
        if not variable or getattr(self, "_secret_confirmed", False):
            return
        connection = ("issuer", "client_id", *SECRET_ENDPOINT_FIELDS)
        owner = None
        others = Provider.objects.exclude(pk=self.pk) if self.pk else Provider.objects.all()
        for other in others.filter(client_secret_env=variable).values("slug", *connection):
            if any(other[name] != getattr(self, name) for name in connection):
                owner = f"provider {other['slug']!r}"
                break
        if owner is None:
            connection_slug = (
                DirectoryConnection.objects.filter(secret_key_env=variable).values_list("slug", flat=True).first()
            )
            if connection_slug is not None:
                owner = f"directory connection {connection_slug!r}"
            elif MFAConfiguration.objects.filter(client_secret_env=variable).exists():
                owner = "the second factor"
        if owner is not None:
            raise ValidationError(
                _(
                    "The variable %(variable)s already holds the secret of %(owner)s, another connection: "
                    'confirm that this secret may be sent to this issuer (tick "send the secret to the new '
                    'connection"), or name another variable.'
                )
                % {"variable": variable, "owner": owner}
            )

    def save(self, *args: Any, **kwargs: Any) -> None:
        with transaction.atomic():
            if self.is_default:
                Provider.objects.exclude(pk=self.pk).filter(is_default=True).update(is_default=False)
            super().save(*args, **kwargs)

    # Secrets -----------------------------------------------------------------------------------

    def set_client_secret(self, secret: str) -> None:
        """Store ``secret`` encrypted at rest (needs ``DUO_OIDC["ENCRYPTION_KEYS"]``)."""
        self.client_secret_encrypted = encrypt(secret) if secret else ""

    def get_client_secret(self) -> str:
        """Return the client secret, from the environment variable or the encrypted column."""
        return read_secret(
            self.client_secret_env,
            self.client_secret_encrypted,
            variable="The provider's client-secret variable",
            secret="client secret",
            missing="The provider has no client secret.",
        )

    @property
    def secret_status(self) -> str:
        """Describe where the secret comes from, without revealing it."""
        return describe_secret(self.client_secret_env, self.client_secret_encrypted)

    # Values for the core -----------------------------------------------------------------------

    def endpoint_overrides(self) -> dict[str, str]:
        """The endpoints set by hand on this row (non-blank ones), by metadata name."""
        return {name: value for name in ENDPOINT_FIELDS if (value := getattr(self, name))}

    def credentials(self) -> ClientCredentials:
        secret = self.get_client_secret()
        # A value outside the field's choices (written past its validation) is refused, as apply() would.
        method = _TOKEN_AUTH_METHODS.get(self.token_auth_method)
        if method is None:
            raise ConfigurationError(f"Unknown token endpoint authentication method {self.token_auth_method!r}.")
        return ClientCredentials(self.client_id, secret, method)

    @property
    def resource_list(self) -> tuple[str, ...]:
        """The RFC 8707 resource indicators sent at login and on refresh (none: no ``resource``)."""
        return parse_resource_indicators(self.resource_indicators)

    @property
    def code_exchange_resources(self) -> tuple[str, ...]:
        """The resource indicators the code exchange names: none while the login reads userinfo.

        RFC 8707 section 2.2 lets the client name them there too, but an access token for the
        downstream API is refused at the userinfo endpoint (oidc-provider: invalid_token); the login's
        token is then the provider's, and the API's comes with a renewal before it is first handed out.
        """
        return () if self.use_userinfo else self.resource_list

    @property
    def scope_set(self) -> frozenset[str]:
        return parse_scopes(self.scopes) | {"openid"}

    @property
    def audience_list(self) -> tuple[str, ...]:
        return tuple(self.access_token_audiences.split()) or (self.client_id,)

    @property
    def machine_client_set(self) -> frozenset[str]:
        return frozenset(self.machine_clients.split())

    @property
    def algorithm_list(self) -> tuple[str, ...]:
        return tuple(self.allowed_algorithms.split())

    def claim_mapping(self) -> ClaimMapping:
        return ClaimMapping(
            username_claims=tuple(self.username_claims.split()),
            email_claim=self.email_claim,
            first_name_claim=self.first_name_claim,
            last_name_claim=self.last_name_claim,
        )


class Identity(models.Model):
    """A provider's subject linked to a Django user: users are found by (provider, sub), never by email."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="identities")
    sub = models.CharField(max_length=255)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="duo_identities")
    # Groups and the staff flag this app granted through group rules: the only ones it may take away.
    managed_groups = models.ManyToManyField(Group, blank=True, related_name="+")
    granted_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)
    # The join claims of the last login (email, preferred_username): what a directory connection matches
    # Duo's Admin API users by. Never a token.
    last_claims = models.JSONField(default=dict, blank=True)
    # Duo's Admin API user_id (DU...) once a directory sync matched this identity (Duo's SSO ``sub`` is
    # not the Admin API user_id).
    duo_user_id = models.CharField(max_length=64, blank=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "sub"], name="duo_oidc_identity_provider_sub")]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.provider.slug}:{self.sub} -> {self.user}"


class GroupRule(models.Model):
    """When a claim holds a value, put the user in a Django group (and optionally make them staff)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="group_rules")
    claim = models.CharField(max_length=100, default="groups")
    value = models.CharField(max_length=255)
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    staff = models.BooleanField(default=False, help_text=_("Also set is_staff while the rule matches."))

    class Meta:
        ordering = ["claim", "value"]

    def __str__(self) -> str:
        target = self.group.name if self.group else "-"
        return f"{self.claim} = {self.value} -> {target}{' + staff' if self.staff else ''}"

    def clean(self) -> None:
        if self.group is None and not self.staff:
            raise ValidationError(_("A rule needs a group, the staff flag, or both."))
        if glob_matches_any_value(self.value):
            raise ValidationError(
                {"value": _("This pattern matches any group (or any group path): name the group, e.g. crm-*.")}
            )


class ScopeRule(models.Model):
    """Scopes required for views you don't own, by path prefix or URL name (e.g. /admin/ needs admin.access)."""

    path_prefix = models.CharField(max_length=200, blank=True, help_text=_("e.g. /admin/"))
    url_name = models.CharField(max_length=200, blank=True, help_text=_("e.g. app:view-name"))
    scopes = models.CharField(max_length=500, help_text=_("Space-separated scopes."))
    any_of = models.BooleanField(default=False, help_text=_("One of the scopes is enough (default: all)."))
    max_age = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Seconds; an older authentication must go through Duo again (step-up).")
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["path_prefix", "url_name"]

    def __str__(self) -> str:
        return f"{self.path_prefix or self.url_name}: {self.scopes}"

    def clean(self) -> None:
        if bool(self.path_prefix) == bool(self.url_name):
            raise ValidationError(_("Give either a path prefix or a URL name."))
        if self.path_prefix and not self.path_prefix.startswith("/"):
            raise ValidationError({"path_prefix": _("A path prefix starts with /.")})
        if not parse_scopes(self.scopes):
            raise ValidationError({"scopes": _("Give at least one scope.")})


# Sessions ------------------------------------------------------------------------------------------


class LiveSession(models.Model):
    """One live Django session of a user, so that "end every session of this user" is one call.

    Maintained at login and logout. The session key is a credential: it is stored sealed (authenticated
    encryption, :func:`~django_duo_oidc.state.encryption.seal`) and found by its SHA-256 digest.
    """

    class Kind(models.TextChoices):
        OIDC = "oidc", _("OpenID Connect login")
        MFA = "mfa", _("password and Duo second factor")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="duo_live_sessions")
    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.CASCADE, related_name="live_sessions"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.OIDC)
    sub = models.CharField(max_length=255, blank=True)
    # The provider's session id (the ID token's ``sid``, OIDC Back-Channel Logout 1.0 section 2.1), if any.
    sid = models.CharField(max_length=255, blank=True, db_index=True)
    key_digest = models.CharField(max_length=64, unique=True)
    key_sealed = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "provider"], name="duo_oidc_livesession_user")]

    def __str__(self) -> str:
        where = self.provider.slug if self.provider is not None else self.kind
        return f"session of {self.user} via {where}"


# Directory (Duo Admin API) -------------------------------------------------------------------------


class DirectoryConnection(models.Model):
    """A Duo Admin API application (read-only permissions suffice) that governs a provider's users."""

    class Match(models.TextChoices):
        EMAIL = "email", _("email: Duo's email equals the login's email claim")
        USERNAME = "username", _("username: Duo's username equals the login's preferred_username claim")

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100, blank=True)
    api_host = models.CharField(
        max_length=255,
        help_text=_("The Admin API hostname, e.g. api-xxxxxxxx.duosecurity.com (host:port for a test server)."),
    )
    integration_key = models.CharField(max_length=64, help_text=_("Integration key (DI...)."))
    secret_key_env = models.CharField(
        max_length=255, blank=True, help_text=_("Name of an environment variable holding the secret key (preferred).")
    )
    secret_key_encrypted = models.TextField(blank=True, editable=False)
    ca_certs = models.CharField(
        max_length=500, blank=True, help_text=_("Path of a CA bundle to trust instead of Duo's pinned CAs (tests).")
    )
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="directories")
    match = models.CharField(max_length=16, choices=Match.choices, default=Match.EMAIL)
    manage_groups = models.BooleanField(
        default=True,
        help_text=_("Mirror Duo groups onto Django groups (only groups this connection created or was given)."),
    )
    group_prefix = models.CharField(
        max_length=50, default="duo:", blank=True, help_text=_("Prefix of the Django groups made from Duo groups.")
    )
    deprovision = models.BooleanField(
        default=True,
        help_text=_("Deactivate linked users that Duo disables, locks out or deletes, and end their sessions."),
    )
    max_deprovision_percent = models.PositiveSmallIntegerField(
        default=10,
        help_text=_(
            "A run that would deactivate more than this share of the linked users changes nothing and fails "
            "(a wrong join key must not lock everyone out)."
        ),
    )
    enabled = models.BooleanField(default=True)
    last_sync_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_sync_ok = models.BooleanField(null=True, editable=False)
    last_sync_summary = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug

    def clean(self) -> None:
        super().clean()
        if self.secret_key_env:
            refusal = secret_env_refusal(self.secret_key_env)
            if refusal:
                raise ValidationError({"secret_key_env": refusal})
        if self.max_deprovision_percent is not None and self.max_deprovision_percent > 100:
            # Over 100 the guard could never trip: a wrong join key would deactivate everyone.
            raise ValidationError({"max_deprovision_percent": _("A share is a number from 0 to 100.")})

    def set_secret_key(self, secret: str) -> None:
        """Store the Admin API secret key encrypted at rest (needs ``DUO_OIDC["ENCRYPTION_KEYS"]``)."""
        self.secret_key_encrypted = encrypt(secret) if secret else ""

    def get_secret_key(self) -> str:
        """Return the secret key, from the environment variable or the encrypted column."""
        return read_secret(
            self.secret_key_env,
            self.secret_key_encrypted,
            variable="The directory's secret-key variable",
            secret="Admin API secret key",
            missing="The directory connection has no secret key.",
        )

    @property
    def secret_status(self) -> str:
        """Describe where the secret key comes from, without revealing it."""
        return describe_secret(self.secret_key_env, self.secret_key_encrypted)


class DirectoryGroup(models.Model):
    """A Duo group and the Django group it is mirrored onto (the only groups a sync adds or removes)."""

    connection = models.ForeignKey(DirectoryConnection, on_delete=models.CASCADE, related_name="groups")
    duo_group_id = models.CharField(max_length=64)  # DG...
    name = models.CharField(max_length=255)
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "duo_group_id"], name="duo_oidc_directorygroup_unique")
        ]

    def __str__(self) -> str:
        return self.name


class DirectoryUser(models.Model):
    """What the last complete sync saw of one Duo user: the access review reads it (never a secret)."""

    connection = models.ForeignKey(DirectoryConnection, on_delete=models.CASCADE, related_name="users")
    duo_user_id = models.CharField(max_length=64)  # DU...
    username = models.CharField(max_length=255, blank=True)
    email = models.CharField(max_length=255, blank=True)
    realname = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=32, blank=True)  # active, bypass, disabled, locked out
    is_enrolled = models.BooleanField(default=False)
    last_login = models.DateTimeField(null=True, blank=True)
    # [{"group_id": "DG...", "name": "..."}]
    groups = models.JSONField(default=list, blank=True)
    # Kind and count only: {"phones": 1, "tokens": 0, "webauthn": 2, "desktop": 0}
    devices = models.JSONField(default=dict, blank=True)
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="directory_users"
    )
    seen_at = models.DateTimeField(null=True, blank=True)
    # Set when Duo no longer lists the user (deleted in Duo).
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set when a sync made the linked Django user inactive; only such users are re-activated by a sync.
    deprovisioned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "duo_user_id"], name="duo_oidc_directoryuser_unique")
        ]
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username or self.duo_user_id


# Second factor after a password login (Duo Universal Prompt, Web SDK v4) -------------------------


class MFAConfigurationQuerySet(models.QuerySet["MFAConfiguration"]):
    def active(self) -> MFAConfiguration | None:
        """The configuration in force: the first enabled row (the admin and the command keep one)."""
        return self.filter(enabled=True).order_by("pk").first()


class MFAConfiguration(models.Model):
    """Duo's Universal Prompt as the second factor after Django's password login (a Duo "Web SDK" app).

    One row is used: the first enabled one (:meth:`MFAConfigurationQuerySet.active`). The client secret
    is read from an environment variable (preferred) or stored encrypted, exactly like a provider's.
    """

    class FailMode(models.TextChoices):
        CLOSED = "closed", _("closed: when Duo cannot be reached, nobody who must use Duo logs in")
        OPEN = "open", _("open: when Duo cannot be reached, log users in with the password alone (logged)")

    class Who(models.TextChoices):
        ALL = "all", _("every user")
        STAFF = "staff", _("staff and superusers")
        GROUPS = "groups", _("members of the groups below (and staff and superusers)")

    class UsernameFrom(models.TextChoices):
        USERNAME = "username", _("the Django username is the Duo username")
        EMAIL = "email", _("the user's email address is the Duo username")

    name = models.CharField(max_length=100, default="Duo", help_text=_("Shown in messages."))
    enabled = models.BooleanField(default=True)
    client_id = models.CharField(
        max_length=64, help_text=_("Client ID of the Duo Admin Panel's Web SDK application (20 characters).")
    )
    client_secret_env = models.CharField(
        max_length=255,
        blank=True,
        help_text=_("Name of an environment variable holding the client secret (preferred)."),
    )
    client_secret_encrypted = models.TextField(blank=True, editable=False)
    api_host = models.CharField(
        max_length=255,
        help_text=_("API hostname of the Web SDK application, e.g. api-xxxxxxxx.duosecurity.com."),
    )
    ca_certs = models.CharField(
        max_length=500,
        blank=True,
        help_text=_("Path of a CA bundle to trust instead of the Duo CAs the SDK pins (tests, TLS proxies)."),
    )
    fail_mode = models.CharField(max_length=8, choices=FailMode.choices, default=FailMode.CLOSED)
    who = models.CharField(
        max_length=8,
        choices=Who.choices,
        default=Who.ALL,
        help_text=_("Who must pass Duo after the password. Staff and superusers always must (the admin login)."),
    )
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    username_from = models.CharField(max_length=16, choices=UsernameFrom.choices, default=UsernameFrom.USERNAME)
    remember_days = models.PositiveSmallIntegerField(
        default=0,
        help_text=_(
            "0: ask Duo at every login. N: after passing Duo, remember the browser for N days (a signed cookie "
            "bound to the user, ended by a password change or the admin's revoke action)."
        ),
    )
    refused_factors = models.CharField(
        max_length=500,
        blank=True,
        help_text=_('Comma-separated Duo factors not accepted here, e.g. "Bypass Code" (auth_context.factor).'),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MFAConfigurationQuerySet.as_manager()
    #: The pks of ``groups``, kept with the configuration in force (mfa.who's memo); None: not read yet.
    group_ids: frozenset[int] | None = None

    class Meta:
        verbose_name = "second factor (Duo Universal Prompt)"
        verbose_name_plural = "second factor (Duo Universal Prompt)"

    def __str__(self) -> str:
        return f"{self.name} ({self.api_host})"

    def clean(self) -> None:
        super().clean()
        if self.client_secret_env:
            refusal = secret_env_refusal(self.client_secret_env)
            if refusal:
                raise ValidationError({"client_secret_env": refusal})

    @property
    def refused_factor_set(self) -> frozenset[str]:
        """The refused factors, compared without regard to case or surrounding spaces."""
        return frozenset(f.strip().casefold() for f in self.refused_factors.split(",") if f.strip())

    def set_client_secret(self, secret: str) -> None:
        """Store ``secret`` encrypted at rest (needs ``DUO_OIDC["ENCRYPTION_KEYS"]``)."""
        self.client_secret_encrypted = encrypt(secret) if secret else ""

    def get_client_secret(self) -> str:
        """Return the client secret, from the environment variable or the encrypted column.

        :raises ConfigurationError: no secret, an unset or disallowed variable, or an undecryptable value.
        """
        return read_secret(
            self.client_secret_env,
            self.client_secret_encrypted,
            variable="The second factor's client-secret variable",
            secret="Duo client secret",
            missing="The second factor configuration has no client secret.",
        )

    @property
    def secret_status(self) -> str:
        """Describe where the secret comes from, without revealing it."""
        return describe_secret(self.client_secret_env, self.client_secret_encrypted)


class MFAUserState(models.Model):
    """A user's last Duo second-factor authentication, and the epoch of their remembered browsers.

    Never a secret: the time, the result, the factor (e.g. "Duo Push") and the kind of device.
    """

    class Result(models.TextChoices):
        ALLOW = "allow", _("allowed by Duo")
        DENY = "deny", _("denied by Duo")
        ERROR = "error", _("failed (Duo unreachable, refused factor, invalid answer)")
        FAIL_OPEN = "fail_open", _("let in WITHOUT Duo (Duo unreachable, fail mode open)")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="duo_mfa_state")
    last_auth_at = models.DateTimeField(null=True, blank=True)
    last_result = models.CharField(max_length=16, choices=Result.choices, blank=True)
    last_factor = models.CharField(max_length=64, blank=True)
    last_device = models.CharField(max_length=32, blank=True)
    last_reason = models.CharField(max_length=200, blank=True)
    # Remembered browsers carry the epoch they were remembered under: bumping it revokes them all.
    remember_epoch = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "second factor of a user"
        verbose_name_plural = "second factor of users"

    def __str__(self) -> str:
        return f"second factor of {self.user}"
