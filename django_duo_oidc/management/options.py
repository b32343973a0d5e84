"""Command-line options made from model fields, so that every field can be set and unset from the shell.

A boolean field is ``--flag`` / ``--no-flag``; a field with choices takes one of them; a text field takes
a value (``''`` empties it where the field may be blank); a number field that may be empty takes
``''`` to empty it. The option's destination is the field's name.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

__all__ = ["CLEAR", "add_field_options", "apply_field_options", "flag_for"]

#: What an empty value of a number option means: the field is emptied (NULL).
CLEAR = ""


def flag_for(name: str, flags: Mapping[str, str]) -> str:
    """The option of field ``name``: its entry in ``flags``, else ``--`` and the name with dashes."""
    return flags.get(name, "--" + name.replace("_", "-"))


def _number_or_clear(text: str) -> int | str:
    if not text.strip():
        return CLEAR
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a number of 0 or more")
    return value


def _number(text: str) -> int:
    value = _number_or_clear(text)
    if value == CLEAR:
        raise argparse.ArgumentTypeError("a number is needed here (this field cannot be empty)")
    assert isinstance(value, int)
    return value


def add_field_options(
    parser: argparse.ArgumentParser,
    model: type[models.Model],
    names: Iterable[str],
    *,
    flags: Mapping[str, str] | None = None,
    helps: Mapping[str, str] | None = None,
) -> None:
    """Add one option per field of ``model`` in ``names`` (see the module's docstring for their kinds)."""
    flags = flags or {}
    helps = helps or {}
    for name in names:
        field = model._meta.get_field(name)
        assert isinstance(field, models.Field)
        flag = flag_for(name, flags)
        text = helps.get(name) or str(field.help_text or field.verbose_name).rstrip(".") + "."
        kwargs: dict[str, Any] = {"dest": name, "default": None}
        if isinstance(field, models.BooleanField):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.choices:
            kwargs["choices"] = [str(value) for value, _ in field.flatchoices]
        elif isinstance(field, models.IntegerField):
            kwargs["type"] = _number_or_clear if field.null else _number
            kwargs["metavar"] = "N"
            if field.null:
                text += " '' empties it."
        elif field.blank:
            text += " '' empties it."
        parser.add_argument(flag, help=text, **kwargs)


def apply_field_options(instance: models.Model, options: Mapping[str, Any], names: Iterable[str]) -> None:
    """Set each field in ``names`` whose option was given (an empty number option empties the field)."""
    for name in names:
        value = options.get(name)
        if value is None:
            continue
        number = isinstance(instance._meta.get_field(name), models.IntegerField)
        setattr(instance, name, None if number and value == CLEAR else value)
