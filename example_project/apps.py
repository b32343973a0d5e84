"""The example project as an app: its templates, and the "You are logged out" message."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib import messages
from django.http import HttpRequest


def say_logged_out(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    """Receiver of Django's ``user_logged_out``: tell the next page that the logout happened.

    Messages outlive the session that logout flushes (MessageMiddleware writes them to a cookie, or to
    the new session); without that middleware nothing is said (``fail_silently``).
    """
    if request is not None:
        messages.info(request, "You are logged out.", fail_silently=True)


class ExampleConfig(AppConfig):
    name = "example_project"
    verbose_name = "django-duo-oidc example"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        user_logged_out.connect(say_logged_out, dispatch_uid="example_say_logged_out")
