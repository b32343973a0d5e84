"""Calling other APIs for the signed-in user, with the access token the provider granted to their login.

:class:`UserTokenAuth` (``requests``) and :class:`HttpxUserTokenAuth` (``httpx``, sync and async
clients) attach ``request.oidc.access_token()`` as ``Authorization: Bearer``::

    requests.get(url, auth=UserTokenAuth(request), timeout=5)
    httpx.get(url, auth=HttpxUserTokenAuth(request))
    async with httpx.AsyncClient(auth=HttpxUserTokenAuth(request)) as client: ...

The token is renewed when due (single-flight, see :mod:`django_duo_oidc.login.renewal`). On a 401 from
the origin (scheme, host, port: RFC 6454) the token was sent to, it is renewed once (forced) and the
request sent once more; a second 401 is returned as it is, and nothing is retried when the renewal
gives back the same token (a token issued seconds ago is not renewed again: the API is refusing
something else). Never a loop, never a token in a log line (only method and path).

Redirects: the token never follows one to another origin. ``requests`` strips it on a change of
host; :class:`UserTokenAuth` also strips it on a change of scheme or port (requests keeps it on an
http -> https upgrade). ``httpx`` strips it on any change of origin except the http -> https upgrade of
the same host, where the token already went over plain http. A 401 after a redirect to another origin
is never retried.

``origins=["https://api.example.com"]`` pins where the token may go: a request to any other origin
raises ``ValueError`` before anything is sent (set it when the auth object is shared, e.g. on a
``requests.Session``, so a call to another host never carries the user's token).

What they raise comes from ``access_token()``: ``ReauthenticationRequired`` (send the user through
login again: the middleware does for views) and ``ProviderUnavailable``.

``httpx`` is optional (``pip install django-duo-oidc[httpx]``); ``HttpxUserTokenAuth`` raises
``ImproperlyConfigured`` when it is missing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, Generator, Iterable
from typing import Any, Protocol, cast
from urllib.parse import urljoin

import requests
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from .client_credentials import _mark, _origin, _url_for_log

try:
    import httpx
except ImportError:  # the optional extra
    httpx = None  # type: ignore[assignment]  # checked below: the placeholder class is defined instead

__all__ = ["HttpxUserTokenAuth", "TokenSource", "UserTokenAuth"]

logger = logging.getLogger("django_duo_oidc")


class TokenSource(Protocol):
    """What hands out the user's token: ``request.oidc`` (a ``RequestContext``)."""

    def access_token(self, *, force: bool = False) -> str: ...

    async def aaccess_token(self, *, force: bool = False) -> str: ...


def _source(source: Any) -> TokenSource:
    """``request.oidc`` of a Django request, or the context itself."""
    context = getattr(source, "oidc", source)
    if not callable(getattr(context, "access_token", None)):
        raise TypeError("Pass the Django request (or request.oidc): DuoOIDCMiddleware sets request.oidc.")
    return cast(TokenSource, context)  # a RequestContext (it has access_token: checked above)


def _origins(origins: Iterable[str] | None) -> frozenset[tuple[str, str, int | None]] | None:
    """The allowed origins, parsed; None: any origin."""
    if origins is None:
        return None
    parsed: set[tuple[str, str, int | None]] = set()
    for value in [origins] if isinstance(origins, str) else origins:
        origin = _origin(value)
        if origin is None or not origin[1] or origin[0] not in ("http", "https"):
            raise ValueError(f"{value!r} is not an origin such as 'https://api.example.com'.")
        parsed.add(origin)
    return frozenset(parsed)


def _check_origin(allowed: frozenset[tuple[str, str, int | None]] | None, url: str | None) -> None:
    """Refuse, before anything is sent, a request to an origin the token may not go to."""
    if allowed is not None and _origin(url) not in allowed:
        raise ValueError(f"The user's token may not be sent to {_url_for_log(url)}: not one of the allowed origins.")


def _bearer(token: str) -> str:
    return f"Bearer {token}"


def _digest(header: str) -> str:
    return hashlib.sha256(header.encode()).hexdigest()


class UserTokenAuth(requests.auth.AuthBase):
    """``requests`` authentication with the signed-in user's access token; one retry on a 401.

    >>> requests.get("https://api.example.com/contacts", auth=UserTokenAuth(request), timeout=5)
    """

    def __init__(self, source: Any, *, origins: Iterable[str] | None = None) -> None:
        self.source = _source(source)
        self.origins = _origins(origins)

    # No token is held in a local variable of these methods: Django's error reports list locals (and
    # the request objects' reprs show no headers).
    @sensitive_variables()
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        _check_origin(self.origins, request.url)
        request.headers["Authorization"] = _bearer(self.source.access_token())
        # Only this very request carries the mark (PreparedRequest.copy drops it): a redirected request
        # is never retried, and the retry goes only where the token was attached.
        _mark(request, _origin(request.url))
        request.register_hook("response", self._on_response)
        return request

    @sensitive_variables()
    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        sent = response.request
        if response.is_redirect:
            _strip_on_cross_origin_redirect(response)
            return response
        if response.status_code != 401 or getattr(sent, "_duo_oidc_retried", False):
            return response
        origin = getattr(sent, "_duo_oidc_origin", None)
        if origin is None or origin != _origin(sent.url):
            return response
        if getattr(sent, "_body_position", None) is not None:
            requests.utils.rewind_body(sent)  # a file body must be read again from the start
        elif sent.body is not None and not isinstance(sent.body, str | bytes):
            return response  # a generator body cannot be sent twice
        retry = sent.copy()
        retry.headers["Authorization"] = _bearer(self.source.access_token(force=True))
        if retry.headers["Authorization"] == sent.headers.get("Authorization"):
            return response  # nothing newer to send: the 401 stands
        response.content  # noqa: B018 - read and release the connection of the refused answer
        response.close()
        _mark(retry, origin, retried=True)
        logger.info("Retrying %s %s once with a renewed user token after a 401", sent.method, _url_for_log(sent.url))
        new_response = response.connection.send(retry, **kwargs)
        new_response.history.append(response)
        new_response.request = retry
        return new_response


def _strip_on_cross_origin_redirect(response: requests.Response) -> None:
    """requests copies the redirected request from ``response.request``: drop the token there when the
    redirect leaves the origin (requests itself keeps it on an http -> https upgrade of the same host)."""
    sent = response.request
    target = urljoin(sent.url or "", response.headers.get("location", ""))
    if "Authorization" in sent.headers and _origin(target) != _origin(sent.url):
        del sent.headers["Authorization"]
        logger.info("Not sending the user token on a redirect from %s to another origin", _url_for_log(sent.url))


if httpx is not None:

    class HttpxUserTokenAuth(httpx.Auth):
        """``httpx`` authentication (sync and async clients) with the signed-in user's access token;
        one retry on a 401 from the origin it was sent to.

        >>> httpx.get("https://api.example.com/contacts", auth=HttpxUserTokenAuth(request))
        """

        requires_request_body = True  # the body is kept, so the retry can send it again

        def __init__(self, source: Any, *, origins: Iterable[str] | None = None) -> None:
            self.source = _source(source)
            self.origins = _origins(origins)

        # Generators: Django's sensitive_variables cannot cover their frames, so no token is held in a
        # local variable here (only its digest, to tell a renewed token from the refused one).
        def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
            _check_origin(self.origins, str(request.url))
            request.headers["Authorization"] = _bearer(self.source.access_token())
            sent = _digest(request.headers["Authorization"])
            response = yield request
            if self._retry_wanted(request, response):
                request.headers["Authorization"] = _bearer(self.source.access_token(force=True))
                if _digest(request.headers["Authorization"]) != sent:
                    self._log(request)
                    yield request

        async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
            _check_origin(self.origins, str(request.url))
            request.headers["Authorization"] = _bearer(await self.source.aaccess_token())
            sent = _digest(request.headers["Authorization"])
            response = yield request
            if self._retry_wanted(request, response):
                request.headers["Authorization"] = _bearer(await self.source.aaccess_token(force=True))
                if _digest(request.headers["Authorization"]) != sent:
                    self._log(request)
                    yield request

        @staticmethod
        def _retry_wanted(request: httpx.Request, response: httpx.Response) -> bool:
            """A 401 from the origin the token was sent to, every redirect on the way within it."""
            if response.status_code != 401:
                return False
            origin = _origin(str(request.url))
            hops = [*response.history, response]
            return origin is not None and all(_origin(str(hop.request.url)) == origin for hop in hops)

        @staticmethod
        def _log(request: httpx.Request) -> None:
            logger.info(
                "Retrying %s %s once with a renewed user token after a 401",
                request.method,
                _url_for_log(str(request.url)),
            )

else:

    class HttpxUserTokenAuth:  # type: ignore[no-redef]  # the other branch's class, when httpx is missing
        """Placeholder: httpx is not installed."""

        def __init__(self, source: Any, *, origins: Iterable[str] | None = None) -> None:
            raise ImproperlyConfigured("HttpxUserTokenAuth needs httpx: pip install 'django-duo-oidc[httpx]'.")
