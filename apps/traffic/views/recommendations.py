"""Portal actions on caching recommendations, from an application's Traffic tab: accept or reject one (configure
rights on the application; rejecting needs a reason) and recompute them now (operator role). Each answers with a
redirect back to the tab and a message; a refused right is the portal's audited 403. The rows themselves are shown
by ``traffic/_recommendations.html`` with :func:`apps.traffic.recommend_selectors.recommendations_for`."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core import portal
from apps.core.access import Action
from apps.core.errors import DomainError, ForbiddenError
from apps.traffic import recommend_selectors, selectors
from apps.traffic.models import Recommendation
from apps.traffic.services import recommendations as services


class DecisionForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


def _back(application_id: int) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("traffic:application", args=[application_id]) + "#traffic-recommendations")


def _recommendation(request: HttpRequest, pk: int) -> Recommendation:
    found = recommend_selectors.recommendations(request.user).select_related("application").filter(pk=pk).first()
    if found is None:
        raise Http404("No such recommendation")
    return found


def _decide(request: HttpRequest, pk: int, verb: str) -> HttpResponse:
    row = _recommendation(request, pk)
    portal.require(request, Action.CONFIGURE, row, f"traffic.recommendation.{verb}")
    form = DecisionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    decide: Any = services.recommendation_accept if verb == "accept" else services.recommendation_reject
    try:
        decide(recommendation=row, reason=reason, by=request.user)
    except DomainError as exc:
        if isinstance(exc, ForbiddenError):
            portal.deny(request, f"traffic.recommendation.{verb}", row)
        messages.error(request, exc.message)
        return _back(row.application_id)
    done = "accepted" if verb == "accept" else "rejected"
    messages.success(request, f"The recommendation for {row.method} {row.route} is {done}.")
    return _back(row.application_id)


@login_required
@require_POST
def recommendation_accept(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, "accept")


@login_required
@require_POST
def recommendation_reject(request: HttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, "reject")


@login_required
@require_POST
def recommendations_compute(request: HttpRequest, pk: int) -> HttpResponse:
    application = selectors.application(request.user, pk)
    if application is None:
        raise Http404("No such application")
    portal.require(request, Action.ACT, application, "traffic.recommendation.compute")
    routes = services.recommendations_compute(application=application, by=request.user)
    messages.success(request, f"Caching recommendations recomputed for {routes} routes.")
    return _back(application.pk)
