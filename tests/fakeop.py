"""The project's own tests use the shipped test kit's fake provider: this module IS
:mod:`django_duo_oidc.testing.fakeop` (one module object under two names, so ``fakeop.CURRENT = op``
here sets the fake the adapter answers with), kept so ``tests.fakeop`` imports and settings work."""

from __future__ import annotations

import sys

from django_duo_oidc.testing import fakeop as _shipped

sys.modules[__name__] = _shipped
