"""Portal shell: dashboard, area pages, live fragments and error pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.core import registry
from apps.core.events import DASHBOARD
from apps.core.selectors import dashboard_attention, dashboard_counters


@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    """The "Needs attention" sections first (what the apps registered, restricted to the viewer), then the
    counters; both re-rendered live on the dashboard topic."""
    context = {
        "attention": dashboard_attention(request.user),
        "counters": dashboard_counters(request.user),
        "live_topics": DASHBOARD,
    }
    return render(request, "core/dashboard.html", context)


@login_required
@require_GET
def dashboard_counters_fragment(request: HttpRequest) -> HttpResponse:
    """The counters alone, for a page that re-fetches after its websocket reconnects."""
    return render(request, "core/_dashboard_counters.html", {"counters": dashboard_counters(request.user)})


@login_required
@require_GET
def area(request: HttpRequest, name: str) -> HttpResponse:
    found = registry.area(name)
    if found is None:
        raise Http404(name)
    return render(request, "core/area.html", {"area": {"title": found.title, "empty": found.empty}, "area_key": name})


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", status=403)


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", {"path": request.path}, status=404)


def error_500(request: HttpRequest) -> HttpResponse:
    # No context processors that touch the database: the database may be why we are here.
    from django.template import loader

    return HttpResponse(
        loader.get_template("500.html").render({"request_id": getattr(request, "request_id", "")}), status=500
    )
