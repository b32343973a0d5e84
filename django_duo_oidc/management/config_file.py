"""The configuration file of ``duo_oidc_export`` and ``duo_oidc_import``: its format, reading it safely,
and the configuration in the database written as it.

A JSON object::

    {"format": "django-duo-oidc-config", "version": 1,
     "providers": {"<slug>": {<every field by name>, "group_rules": [{"claim", "value", "group", "staff"}]}},
     "scope_rules": [{"path_prefix" or "url_name", "scopes", "any_of", "max_age", "enabled"}],
     "directory_connections": {"<slug>": {<every field>, "provider": "<provider slug>"}},
     "second_factor": {<every field>, "groups": ["<group name>"]} or null}

Rows are named by natural keys (a slug, a scope rule's path prefix or URL name, a group's name), never by a
database id. A secret is never in the file: ``client_secret_env`` and ``secret_key_env`` name the
environment variable that holds it, or are ``null`` when the secret is not read from a variable (a
secret stored encrypted in the database stays there: it is neither exported nor changed by an import).

Over 300 lines on purpose: the format's field lists (a contract, checked against the models by
``tests/integration/test_config_as_code.py``), writing it and checking a file's shape belong together.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any, cast

from django.contrib.auth.models import Group
from django.db import models

from ..logsafe import sanitise
from ..models import ENDPOINT_FIELDS, DirectoryConnection, GroupRule, MFAConfiguration, Provider, ScopeRule

__all__ = [
    "FORMAT",
    "MAX_FILE_BYTES",
    "SECTIONS",
    "VERSION",
    "ConfigFileError",
    "Section",
    "check_document",
    "export_document",
    "read_document",
    "row_dict",
    "scope_rule_target",
    "show",
]

FORMAT = "django-duo-oidc-config"
VERSION = 1
#: A larger file is refused unread: a deployment's configuration is a few kilobytes.
MAX_FILE_BYTES = 1_000_000


class ConfigFileError(ValueError):
    """The file cannot be used (unreadable, malformed, another version, a secret value, an invalid row),
    or the database's configuration cannot be written as one. The message says why, never a secret."""


@dataclass(frozen=True)
class Section:
    """One kind of row in the file: its key in the file, its model, and the fields written (by name)."""

    key: str
    model: type[models.Model]
    fields: tuple[str, ...]


PROVIDERS = Section(
    "providers",
    Provider,
    (
        "name",
        "enabled",
        "is_default",
        "issuer",
        "client_id",
        "client_secret_env",
        "token_auth_method",
        "allowed_algorithms",
        "scopes",
        "prompt",
        "max_age",
        "use_userinfo",
        "introspect",
        "resource_indicators",
        "browser_login",
        "end_session",
        "logout_id_token_hint",
        "revoke_at_logout",
        "backchannel_logout",
        "access_token_validation",
        "access_token_audiences",
        "access_token_require_audience",
        "machine_clients",
        "introspect_with",
        *ENDPOINT_FIELDS,
        "create_users",
        "link_existing_by_email",
        "username_claims",
        "email_claim",
        "first_name_claim",
        "last_name_claim",
    ),
)
GROUP_RULES = Section("group_rules", GroupRule, ("claim", "value", "group", "staff"))
SCOPE_RULES = Section("scope_rules", ScopeRule, ("path_prefix", "url_name", "scopes", "any_of", "max_age", "enabled"))
DIRECTORY_CONNECTIONS = Section(
    "directory_connections",
    DirectoryConnection,
    (
        "name",
        "enabled",
        "provider",
        "api_host",
        "integration_key",
        "secret_key_env",
        "ca_certs",
        "match",
        "manage_groups",
        "group_prefix",
        "deprovision",
        "max_deprovision_percent",
    ),
)
SECOND_FACTOR = Section(
    "second_factor",
    MFAConfiguration,
    (
        "name",
        "enabled",
        "client_id",
        "client_secret_env",
        "api_host",
        "ca_certs",
        "fail_mode",
        "who",
        "groups",
        "username_from",
        "remember_days",
        "refused_factors",
    ),
)
SECTIONS = (PROVIDERS, GROUP_RULES, SCOPE_RULES, DIRECTORY_CONNECTIONS, SECOND_FACTOR)

#: The fields naming the environment variable of a secret, and the column of the same secret stored encrypted.
SECRET_ENV_FIELDS = {"client_secret_env": "client_secret_encrypted", "secret_key_env": "secret_key_encrypted"}
_TOP_KEYS = ("format", "version", PROVIDERS.key, SCOPE_RULES.key, DIRECTORY_CONNECTIONS.key, SECOND_FACTOR.key)
# A key that is no field of the format but is named like a credential: the file carries a secret value.
_SECRET_NAME = re.compile(r"secret|skey|passw|token|private|credential|api_?key|encrypted", re.IGNORECASE)


# Writing ------------------------------------------------------------------------------------------


def row_dict(instance: models.Model, section: Section) -> dict[str, Any]:
    """The row as the file writes it: foreign keys by slug or group name, groups as sorted names, a secret's
    variable or ``None``."""
    row: dict[str, Any] = {}
    for name in section.fields:
        field = instance._meta.get_field(name)
        if field.many_to_many:
            row[name] = sorted(g.name for g in getattr(instance, name).all()) if instance.pk else []
        elif field.is_relation:
            other = getattr(instance, name)
            row[name] = None if other is None else getattr(other, "slug", None) or other.name
        elif name in SECRET_ENV_FIELDS:
            row[name] = getattr(instance, name) or None
        else:
            row[name] = getattr(instance, name)
    return row


def scope_rule_target(row: Mapping[str, Any]) -> str:
    """What a scope rule guards, as the diff names it: ``path /admin/`` or ``url_name app:view``."""
    return f"path {row['path_prefix']}" if row.get("path_prefix") else f"url_name {row.get('url_name', '')}"


def export_document() -> tuple[dict[str, Any], list[str]]:
    """The configuration in the database as the file's object, and warnings (secrets stored encrypted,
    which are not exported).

    :raises ConfigFileError: two scope rules guard the same path or URL name (the file names a rule by it).
    """
    warnings: list[str] = []
    providers: dict[str, Any] = {}
    for provider in Provider.objects.order_by("slug").select_related("introspect_with"):
        row = row_dict(provider, PROVIDERS)
        rules = provider.group_rules.select_related("group")
        row[GROUP_RULES.key] = sorted((row_dict(r, GROUP_RULES) for r in rules), key=_rule_order)
        providers[provider.slug] = row
        if provider.client_secret_encrypted and not provider.client_secret_env:
            warnings.append(
                f"provider {provider.slug} keeps its client secret encrypted in the database; it is not exported"
            )
    scope_rules = [row_dict(r, SCOPE_RULES) for r in ScopeRule.objects.order_by("path_prefix", "url_name", "pk")]
    targets = [scope_rule_target(r) for r in scope_rules]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ConfigFileError(
            f"Several scope rules guard {show(', '.join(twice))}: the file names a rule by what it guards. "
            "Merge them into one rule (all their scopes, in the admin or with duo_oidc_scope_rule) first."
        )
    directories: dict[str, Any] = {}
    for connection in DirectoryConnection.objects.order_by("slug").select_related("provider"):
        directories[connection.slug] = row_dict(connection, DIRECTORY_CONNECTIONS)
        if connection.secret_key_encrypted and not connection.secret_key_env:
            warnings.append(
                f"directory connection {connection.slug} keeps its secret key encrypted in the database; "
                "it is not exported"
            )
    configs = list(MFAConfiguration.objects.order_by("pk").prefetch_related("groups"))
    second_factor = row_dict(configs[0], SECOND_FACTOR) if configs else None
    if configs and configs[0].client_secret_encrypted and not configs[0].client_secret_env:
        warnings.append("the second factor keeps its client secret encrypted in the database; it is not exported")
    if len(configs) > 1:
        warnings.append(
            f"only the first of {len(configs)} second-factor configurations is exported (it is the one used)"
        )
    document = {
        "format": FORMAT,
        "version": VERSION,
        PROVIDERS.key: providers,
        SCOPE_RULES.key: scope_rules,
        DIRECTORY_CONNECTIONS.key: directories,
        SECOND_FACTOR.key: second_factor,
    }
    return document, warnings


def _rule_order(rule: Mapping[str, Any]) -> tuple[str, str, str, bool]:
    return (rule["claim"], rule["value"], rule["group"] or "", rule["staff"])


def dumps(document: Mapping[str, Any]) -> str:
    """The file's text: stable (sorted keys, two-space indent) so that version control shows real changes."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# Reading ------------------------------------------------------------------------------------------


def show(value: Any, limit: int = 120) -> str:
    """A value from the file or the database, safe to print: quoted, control characters escaped, cut."""
    return sanitise(repr(value), limit=limit)


def read_document(stream: IO[bytes]) -> dict[str, Any]:
    """Parse the file (at most :data:`MAX_FILE_BYTES`) into the document's object, checked by
    :func:`check_document`.

    :raises ConfigFileError: too large, not UTF-8, not JSON, or not a valid document.
    """
    data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigFileError(f"The file is larger than {MAX_FILE_BYTES} bytes: not a configuration file.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError("The file is not UTF-8 text.") from None
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ConfigFileError(
            f"The file is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})."
        ) from None
    except (ValueError, RecursionError):
        raise ConfigFileError("The file is not valid JSON (nested too deeply, or NaN or Infinity).") from None
    check_document(document)
    return cast(dict[str, Any], document)  # check_document refused anything but a JSON object


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def check_document(document: Any) -> None:
    """Check the document's shape before anything is read from the database: the format and version,
    no unknown key, no secret value, and each value of the type of its field.

    :raises ConfigFileError: every problem found, one a line.
    """
    if not isinstance(document, dict):
        raise ConfigFileError("The file is not a JSON object: not a configuration file of duo_oidc_export.")
    if document.get("format") != FORMAT:
        raise ConfigFileError(f'The file has no "format": "{FORMAT}": not a configuration file of duo_oidc_export.')
    version = document.get("version")
    if type(version) is not int or version != VERSION:
        raise ConfigFileError(
            f"The file is of version {show(version, 20)}; this version of django-duo-oidc reads version {VERSION}."
        )
    problems: list[str] = []
    _check_keys(document, _TOP_KEYS, "the file", problems)
    providers = document.get(PROVIDERS.key, {})
    if _is(providers, dict, PROVIDERS.key, "an object of providers by slug", problems):
        for slug, row in providers.items():
            where = f"providers.{show(slug, 60)}"
            if _check_row(row, PROVIDERS, where, problems, extra=(GROUP_RULES.key,)):
                rules = row.get(GROUP_RULES.key, [])
                if _is(rules, list, f"{where}.group_rules", "a list", problems):
                    for i, rule in enumerate(rules):
                        _check_row(rule, GROUP_RULES, f"{where}.group_rules[{i}]", problems)
    rules = document.get(SCOPE_RULES.key, [])
    if _is(rules, list, SCOPE_RULES.key, "a list", problems):
        for i, rule in enumerate(rules):
            _check_row(rule, SCOPE_RULES, f"scope_rules[{i}]", problems)
    directories = document.get(DIRECTORY_CONNECTIONS.key, {})
    if _is(directories, dict, DIRECTORY_CONNECTIONS.key, "an object of connections by slug", problems):
        for slug, row in directories.items():
            _check_row(row, DIRECTORY_CONNECTIONS, f"directory_connections.{show(slug, 60)}", problems)
    second_factor = document.get(SECOND_FACTOR.key)
    if second_factor is not None:
        _check_row(second_factor, SECOND_FACTOR, SECOND_FACTOR.key, problems)
    if problems:
        raise ConfigFileError("\n".join(problems))


def _is(value: Any, kind: type, where: str, what: str, problems: list[str]) -> bool:
    if isinstance(value, kind):
        return True
    problems.append(f"{where}: must be {what}.")
    return False


def _check_keys(row: Mapping[str, Any], known: Iterable[str], where: str, problems: list[str]) -> None:
    known = set(known)
    for key in row:
        if key in known:
            continue
        if not isinstance(key, str) or not _SECRET_NAME.search(key):
            problems.append(f"{where}: unknown key {show(key, 60)}.")
            continue
        # Never the value: it may be the secret itself.
        env = "client_secret_env" if "client" in key.lower() or where.startswith("providers") else "secret_key_env"
        problems.append(
            f"{where}: {show(key, 60)} looks like a secret value, which a configuration file never carries. "
            f"Name the environment variable that holds it ({env}), or store it with the command's --*-stdin option."
        )


def _check_row(row: Any, section: Section, where: str, problems: list[str], *, extra: tuple[str, ...] = ()) -> bool:
    if not _is(row, dict, where, "an object", problems):
        return False
    _check_keys(row, (*section.fields, *extra), where, problems)
    for name in section.fields:
        if name in row:
            problem = _type_problem(section.model._meta.get_field(name), name, row[name])
            if problem:
                problems.append(f"{where}.{name}: {problem}")
    return True


def _type_problem(field: Any, name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the value of ``field`` in the file, or None (its content is the form's job)."""
    if field.many_to_many:
        ok = isinstance(value, list) and all(_is_group_name(v) for v in value)
        return None if ok else f"must be a list of group names (1 to {_GROUP_NAME_LENGTH} characters each)."
    if field.is_relation and field.related_model is Group:
        ok = value is None or _is_group_name(value)
        return None if ok else f"must be a group name (1 to {_GROUP_NAME_LENGTH} characters) or null."
    if field.is_relation or name in SECRET_ENV_FIELDS:
        return None if value is None or isinstance(value, str) else "must be a name (text) or null."
    if isinstance(field, models.BooleanField):
        return None if isinstance(value, bool) else "must be true or false."
    if isinstance(field, models.IntegerField):
        if value is None and field.null:
            return None
        ok = type(value) is int and 0 <= value <= 2_147_483_647
        return None if ok else "must be a whole number of 0 or more" + (" or null." if field.null else ".")
    return None if isinstance(value, str) else "must be text."


_GROUP_NAME_LENGTH = Group._meta.get_field("name").max_length or 150


def _is_group_name(value: Any) -> bool:
    """A Django group's name (created when missing: checked here, before the database is asked)."""
    return isinstance(value, str) and 0 < len(value) <= _GROUP_NAME_LENGTH
