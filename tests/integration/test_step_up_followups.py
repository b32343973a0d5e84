"""The step-up ticket's leftovers (an adversarial review of ``core.step_up``, low severity): each test
failed before its fix unless it says it pins what already held.

- Stacked ``@duo_required(max_age=...)`` checks of one request: the first took Duo's ticket, the second
  found none and sent the user to Duo again, forever for ``max_age=0``. Every check of a request now sees
  the same verdict (a per-request memo, as ``request.oidc`` keeps one for the provider's ticket).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

from django_duo_oidc.mfa.decorators import DuoRequiredMixin, duo_required

from .test_mfa_login import _clean_state, alice, callback, config, duo  # noqa: F401 (fixtures)
from .test_mfa_login import login as mfa_login
from .test_step_up_max_age_zero import step_up_through_duo
from .test_step_up_max_age_zero import urlpatterns as zero_urls

pytestmark = [pytest.mark.django_db]


@duo_required(max_age=0)
@duo_required(max_age=0)
def duo_twice(request: HttpRequest) -> HttpResponse:
    return HttpResponse("duo twice ok")


@duo_required(max_age=0)
@duo_required(max_age=0)
async def duo_twice_async(request: HttpRequest) -> HttpResponse:
    return HttpResponse("duo twice async ok")


@method_decorator(duo_required(max_age=0), name="get")
class DuoMixinAndDecorator(DuoRequiredMixin, View):
    duo_max_age = 0

    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("duo mixin ok")


urlpatterns = [
    *zero_urls,
    path("t/followups/duo-twice/", duo_twice),
    path("t/followups/duo-twice-async/", duo_twice_async),
    path("t/followups/duo-mixin/", DuoMixinAndDecorator.as_view()),
]
here = pytest.mark.urls(__name__)


# 2. Stacked Duo checks of one request see one verdict ---------------------------------------------


@here
@pytest.mark.usefixtures("config", "alice")
@pytest.mark.parametrize("url", ["/t/followups/duo-twice/", "/t/followups/duo-twice-async/", "/t/followups/duo-mixin/"])
def test_stacked_duo_checks_of_one_request_all_see_the_step_up(client: Any, duo: Any, url: str) -> None:  # noqa: F811
    mfa_login(client, duo, "alice")
    assert step_up_through_duo(client, duo, url)["Location"] == url
    response = client.get(url)
    # Was a 302 back to Duo: the outer check took the ticket, the inner one found none.
    assert response.status_code == 200, response.get("Location")
    assert client.get(url).status_code == 302  # still once: the next request asks again
