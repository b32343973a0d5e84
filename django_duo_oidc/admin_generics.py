"""Django's admin and form classes with their type parameters, for the admin modules' base classes.

django-stubs makes ``ModelAdmin``, ``TabularInline``, ``StackedInline`` and ``ModelForm`` generic in their
model, but the classes themselves cannot be subscripted at runtime (Django does not define
``__class_getitem__``). Subclass these names instead: for mypy they are the stubs' generic classes; at
runtime ``ModelAdmin[Provider]`` is ``django.contrib.admin.ModelAdmin`` itself, so nothing in the class
hierarchy changes and Django is not patched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

__all__ = ["ModelAdmin", "ModelForm", "StackedInline", "TabularInline"]

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin, StackedInline, TabularInline
    from django.forms import ModelForm
else:
    from django import forms
    from django.contrib import admin

    _C = TypeVar("_C")

    class _Parameterless(Generic[_C]):
        """``cls[...]`` is ``cls``: the type parameters are for the type checker only."""

        def __init__(self, cls: type[_C]) -> None:
            self._cls = cls

        def __getitem__(self, parameters: object) -> type[_C]:
            return self._cls

    ModelAdmin = _Parameterless(admin.ModelAdmin)
    TabularInline = _Parameterless(admin.TabularInline)
    StackedInline = _Parameterless(admin.StackedInline)
    ModelForm = _Parameterless(forms.ModelForm)
