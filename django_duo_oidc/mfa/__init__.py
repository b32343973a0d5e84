"""Duo's Universal Prompt (Web SDK v4, through the official ``duo_universal`` SDK) as the second factor
after Django's own password login.

- :mod:`.views`: ``MFALoginView`` (a ``LoginView`` whose correct password leads to Duo, never straight to
  a session), the callback, the step-up view, and the admin site's login hook; :mod:`.flow`: the steps
  they share (to Duo or the fail mode, the login once Duo allowed it, the failure page);
- :mod:`.decorators`: ``@duo_required(max_age=...)`` and ``DuoRequiredMixin`` (a recent Duo authentication);
- :mod:`.enforce`: the middleware's defence in depth (a password session of a user who must use Duo and
  that never passed Duo is logged out);
- :mod:`.duo`: the SDK put to work (timeouts, errors classified; what the SDK leaves unchecked);
- :mod:`.result`: the checks of Duo's answer (pure); :mod:`.session`: the session keys;
  :mod:`.remember`: remembered browsers; :mod:`.who`: who must use Duo; :mod:`.checks`: system checks;
  :mod:`.admin`: the admin pages (registered by ``django_duo_oidc.admin``).

May import: :mod:`django_duo_oidc.login` (the callback's error-report hygiene), :mod:`django_duo_oidc.sessions`,
:mod:`django_duo_oidc.guards`, :mod:`django_duo_oidc.models`, :mod:`django_duo_oidc.signals`,
:mod:`django_duo_oidc.state`, :mod:`django_duo_oidc.conf`, :mod:`django_duo_oidc.core`.
"""

from __future__ import annotations
