"""Call an API as this server, with a client-credentials token (cached like the app's own calls).

    python manage.py duo_oidc_call https://api.example.test/contacts/ --scope crm.contacts.read
    python manage.py duo_oidc_call --scope crm.contacts.read --print-token   # only when you must

The token is never printed unless ``--print-token`` asks for it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import conf
from ...core.errors import DuoOIDCError
from ...models import Provider
from ...outbound.client_credentials import TOKEN_OBTAINED_LOG, ClientCredentialsAuth, client_token


def _not_token_obtained(record: logging.LogRecord) -> bool:
    return record.msg != TOKEN_OBTAINED_LOG


@contextmanager
def one_line_about_the_token() -> Iterator[None]:
    """Keep the library's "Obtained a client-credentials token" log line off this terminal (the handlers
    writing to standard error or output) while the command prints its own line saying the same and
    more; log files and services still get it."""
    terminal = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    handlers: list[logging.Handler] = []
    logger: logging.Logger | None = logging.getLogger("django_duo_oidc")
    while logger is not None:
        handlers += [
            h
            for h in logger.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) and h.stream in terminal
        ]
        logger = logger.parent if logger.propagate else None
    for handler in handlers:
        handler.addFilter(_not_token_obtained)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(_not_token_obtained)


class Command(BaseCommand):
    help = "Get a client-credentials token from a provider and call a URL with it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("url", nargs="?", help="The URL to call (omit with --print-token).")
        parser.add_argument("--provider", help="Provider slug (default: the default provider).")
        parser.add_argument("--scope", default="", help='Space-separated scopes, e.g. "crm.contacts.read".')
        parser.add_argument("--resource", help="RFC 8707 resource indicator, for providers that need one.")
        parser.add_argument("-X", "--method", default="GET")
        parser.add_argument("--data", help="Request body (sent as JSON when it parses as JSON).")
        parser.add_argument(
            "-H", "--header", action="append", default=[], metavar="NAME: VALUE", help="Extra header. Repeatable."
        )
        parser.add_argument("--print-token", action="store_true", help="Print the access token (it is a secret).")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["url"] and not options["print_token"]:
            raise CommandError("Give a URL to call, or --print-token.")
        try:
            with one_line_about_the_token():
                token = client_token(options["scope"], provider=options["provider"], resource=options["resource"])
        except Provider.DoesNotExist as exc:
            raise CommandError(f"No enabled provider {options['provider'] or '(default)'}.") from exc
        except DuoOIDCError as exc:
            raise CommandError(f"No token: {exc.description}") from exc
        self.stderr.write(
            f"Token from provider {token.provider} ({'cached' if token.from_cache else 'new'}), "
            f"scope {token.scope or options['scope'] or '(none)'!r}, "
            f"expires in {max(0, int(token.expires_at - time.time()))} s."
        )
        if options["print_token"]:
            self.stdout.write(token.access_token)
        if not options["url"]:
            return
        headers = dict(self.parse_header(h) for h in options["header"])
        body: dict[str, Any] = {}
        if options["data"] is not None:
            try:
                body["json"] = json.loads(options["data"])
            except ValueError:
                body["data"] = options["data"].encode()
        auth = ClientCredentialsAuth(options["scope"], provider=options["provider"], resource=options["resource"])
        try:
            response = requests.request(
                options["method"].upper(), options["url"], auth=auth, headers=headers, timeout=conf.http_timeout, **body
            )
        except requests.RequestException as exc:
            raise CommandError(f"The call failed: {type(exc).__name__}.") from exc
        except DuoOIDCError as exc:
            raise CommandError(f"No token: {exc.description}") from exc
        self.stderr.write(f"HTTP {response.status_code}")
        self.stdout.write(response.text)
        if response.status_code >= 400:
            raise CommandError(f"The call was refused (HTTP {response.status_code}).", returncode=2)

    @staticmethod
    def parse_header(text: str) -> tuple[str, str]:
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise CommandError(f"A header looks like 'Name: value', not {text!r}.")
        return name.strip(), value.strip()
