"""Rows written from the shell (the commands, ``duo_oidc_import``) are validated by the admin's own forms.

The same rules as the admin, not a copy of them: the model's ``clean()`` and ``full_clean()``, and the
rules only the admin's form holds (a directory connection's API host and CA bundle), each field cleaned
as the admin cleans it (surrounding spaces stripped). A form is fed the row's values as they are set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from django import forms
from django.contrib.auth.models import Group
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.management.base import CommandError
from django.db import models, transaction

from ..directory.forms import DirectoryConnectionForm
from ..mfa.forms import MFAConfigurationForm
from ..models import DirectoryConnection, GroupRule, MFAConfiguration, Provider, ScopeRule
from ..providers.forms import ProviderForm

__all__ = ["add_group_rule", "admin_form_class", "errors_text", "save_as_admin", "validate_as_admin"]

logger = logging.getLogger("django_duo_oidc")

M = TypeVar("M", bound=models.Model)

_FORMS: dict[type[models.Model], type[forms.ModelForm[Any]]] = {
    Provider: ProviderForm,
    DirectoryConnection: DirectoryConnectionForm,
    MFAConfiguration: MFAConfigurationForm,
    # The admin's pages for these use Django's default form for the model (ScopeRuleAdmin, GroupRuleInline).
    ScopeRule: forms.modelform_factory(ScopeRule, fields="__all__"),
    GroupRule: forms.modelform_factory(GroupRule, fields="__all__"),
}


def admin_form_class(model: type[models.Model]) -> type[forms.ModelForm[Any]]:
    """The form the admin validates ``model`` with."""
    return _FORMS[model]


def _form_data(
    form_class: type[forms.ModelForm[Any]], instance: models.Model, m2m: Mapping[str, Any]
) -> dict[str, Any]:
    """The row's values as the form's data (foreign keys by primary key, many-to-many as lists of them)."""
    data: dict[str, Any] = {}
    for name in form_class.base_fields:
        try:
            field = instance._meta.get_field(name)
        except FieldDoesNotExist:  # a form-only field (the write-only secret): left empty
            continue
        if name in m2m:
            data[name] = [getattr(v, "pk", v) for v in m2m[name]]
        elif field.many_to_many:
            data[name] = [o.pk for o in getattr(instance, name).all()] if instance.pk else []
        else:
            # A form field's model field is a concrete Field (get_field's type also allows reverse relations).
            value = field.value_from_object(instance)  # type: ignore[union-attr]
            data[name] = "" if value is None and not isinstance(field, models.BooleanField) else value
    return data


def validate_as_admin(instance: M, *, m2m: Mapping[str, Iterable[Any]] | None = None) -> forms.ModelForm[Any]:
    """Validate ``instance`` as the admin's form would; return the bound, valid form (its instance is
    ``instance``, with the values cleaned as the admin cleans them).

    :raises ValidationError: what the admin would say, by field.
    """
    form_class = admin_form_class(type(instance))
    form = form_class(data=_form_data(form_class, instance, m2m or {}), instance=instance)
    if not form.is_valid():
        raise ValidationError(form.errors.as_data())
    return form


def save_as_admin(
    instance: M, *, by: str, m2m: Mapping[str, Iterable[Any]] | None = None, only_if_changed: bool = False
) -> M:
    """Validate ``instance`` as the admin does and save it (its many-to-many values too), logging the
    names of the fields that changed (never a value) and the command that changed them (``by``), as the
    admin logs its changes. The line is written when the change is committed: a change rolled back (a dry
    run, a refusal later in the same transaction) is not logged. With ``only_if_changed``, a row the
    database already holds as it is is not written at all.

    :raises ValidationError: what the admin would say; nothing is saved.
    """
    model = type(instance)
    columns = [f.attname for f in model._meta.concrete_fields if f.attname != "updated_at"]
    stored = model._default_manager.filter(pk=instance.pk).values(*columns).first() if instance.pk else None
    form = validate_as_admin(instance, m2m=m2m)
    if stored is None:
        form.save()
        log_created(instance, by)
        return instance
    changed = [c for c in columns if stored[c] != getattr(instance, c)]
    changed += [name for name in (m2m or {}) if name in form.changed_data]
    if changed or not only_if_changed:
        form.save()
    if changed:
        _log_on_commit(
            "%s %s changed by manage.py %s: %s", model._meta.verbose_name, _label(instance), by, ", ".join(changed)
        )
    return instance


def _log_on_commit(message: str, *args: Any) -> None:
    """Log a change once the database keeps it (at once outside a transaction): an audit line for a change
    that was rolled back would record something that never happened."""
    transaction.on_commit(lambda: logger.warning(message, *args))


def log_deleted(instance: models.Model, by: str) -> None:
    """Log the deletion of ``instance`` by ``manage.py <by>`` once the database keeps it (an audit line,
    as for a creation or a change; call it before deleting, while the row still names what it points at)."""
    _log_on_commit("%s %s deleted by manage.py %s", instance._meta.verbose_name, _label(instance), by)


def log_created(instance: models.Model, by: str) -> None:
    """Log the creation of ``instance`` by ``manage.py <by>`` once the database keeps it."""
    _log_on_commit("%s %s created by manage.py %s", instance._meta.verbose_name, _label(instance), by)


def _label(instance: models.Model) -> str:
    """What a log reader recognises a row by: its slug, a scope rule's path or URL name, a group rule's
    ``claim=value:group of provider slug``."""
    if isinstance(instance, ScopeRule):
        return instance.path_prefix or instance.url_name
    if isinstance(instance, GroupRule):
        group = instance.group.name if instance.group is not None else ""
        return f"{instance.claim}={instance.value}:{group} of provider {instance.provider.slug}"
    return str(getattr(instance, "slug", "") or instance.pk)


def errors_text(exc: ValidationError) -> str:
    """A validation error in one line: ``field: message; field: message`` (``__all__`` for the row)."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(str(m) for m in v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


def add_group_rule(
    provider: Provider, *, claim: str, value: str, group_name: str | None, staff: bool, by: str
) -> GroupRule:
    """The provider's rule ``claim = value -> group`` (the group created if missing), set to ``staff``:
    the one there is (its staff flag set), or a new one; validated as the admin's rule form validates it
    (a value naming nothing, such as ``*``, is refused).

    :raises ValidationError: as the admin's form would say; nothing is saved.
    """
    # Stripped as the admin's form strips them: a second run finds the rule the first one saved.
    claim, value, group_name = claim.strip(), value.strip(), (group_name or "").strip()
    group = Group.objects.get_or_create(name=group_name)[0] if group_name else None
    rule = GroupRule.objects.filter(provider=provider, claim=claim, value=value, group=group).first()
    if rule is None:
        rule = GroupRule(provider=provider, claim=claim, value=value, group=group)
    elif rule.staff == staff:
        return rule
    rule.staff = staff
    return save_as_admin(rule, by=by)


def set_enabled(instance: models.Model, options: Mapping[str, Any]) -> None:
    """A command's ``--enable`` / ``--disable``: turn the row on or off (neither given: left as it is)."""
    # Every row these commands switch has an ``enabled`` field; models.Model does not declare one.
    if options.get("enable"):
        instance.enabled = True  # type: ignore[attr-defined]
    if options.get("disable"):
        instance.enabled = False  # type: ignore[attr-defined]


@contextmanager
def refusals_as_command_errors() -> Iterator[None]:
    """Turn the admin's refusal (a ``ValidationError``) into the command's error, in one line."""
    try:
        yield
    except ValidationError as exc:
        raise CommandError(errors_text(exc)) from None
