"""The applications pages: list and detail, and the actions on an application's workloads (scale, restart)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.audit.events import history_of
from apps.clusters import events, selectors, services
from apps.clusters.forms import (
    ApplicationFilterForm,
    RestartForm,
    ScaleForm,
)
from apps.clusters.models import Application, Workload
from apps.clusters.views.common import page_of
from apps.clusters.views.kubeconfig_stash import service_error
from apps.core import portal, registry
from apps.core.access import Action
from apps.core.errors import DomainError

HISTORY_PANELS = 40  # live history panels of an application's workloads (a websocket follows at most 50 topics)


def _applications_table_context(request: HttpRequest) -> dict[str, Any]:
    form = ApplicationFilterForm(request.GET or None, initial={"active": "yes"})
    filters = portal.valid_filters(form)
    active = {"yes": True, "no": False, "all": None}[filters.get("active", "yes")]
    apps = selectors.application_list(
        request.user,
        active=active,
        cluster=filters.get("cluster"),
        namespace=filters.get("namespace", ""),
        search=filters.get("q", ""),
    )
    page = page_of(apps, filters.get("page"))
    for app in page.object_list:
        app.colour = selectors.application_colour(app)
    return {
        "form": form,
        "page": page,
        "query": portal.query_string(filters),
        "choices": selectors.application_filter_choices(request.user),
        "filters": filters,
    }


@login_required
@require_GET
def application_list(request: HttpRequest) -> HttpResponse:
    context = _applications_table_context(request)
    context["live_topics"] = events.APPLICATIONS
    return render(request, "clusters/application_list.html", context)


application_table = portal.table_view("clusters/_application_table.html", _applications_table_context)


def application_or_404(request: HttpRequest, pk: int) -> Application:
    return selectors.visible(request.user, Application.objects.select_related("cluster"), pk)


def _application_page(request: HttpRequest, app: Application, status: int = 200, **forms: Any) -> HttpResponse:
    context = selectors.application_page(request.user, app)
    context.update(
        scale_form=forms.get("scale_form") or ScaleForm(),
        restart_form=forms.get("restart_form") or RestartForm(),
        action_workload=forms.get("workload"),
        tabs=registry.tabs_for("clusters.application", app, request.user),
        live_topics=portal.live(
            events.application(app.pk),
            history_of(app),
            *(history_of(w) for w in context["workloads"][:HISTORY_PANELS]),
        ),
    )
    return render(request, "clusters/application_detail.html", context, status=status)


@login_required
@require_GET
def application_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _application_page(request, application_or_404(request, pk))


def _workload(request: HttpRequest, app: Application, workload_id: int, what: str) -> Workload:
    workload = selectors.visible(
        request.user, Workload.objects.filter(application=app).select_related("cluster"), workload_id
    )
    portal.require(request, Action.ACT, workload, what)
    return workload


def _workload_action(
    request: HttpRequest,
    pk: int,
    workload_id: int,
    *,
    what: str,
    form_class: type[ScaleForm | RestartForm],
    form_name: str,
    act: Callable[[Workload, dict[str, Any]], str],
) -> HttpResponse:
    """One flow for every action on a workload: check the right, validate the form, call the service (``act``,
    which says what was done) and go back to the application; a refusal shows the page again with the error."""
    app = application_or_404(request, pk)
    workload = _workload(request, app, workload_id, what)
    form = form_class(request.POST)
    status = 400
    if form.is_valid():
        try:
            done = act(workload, form.cleaned_data)
        except DomainError as exc:
            service_error(form, exc)
            status = exc.status
        else:
            messages.success(request, done)
            return redirect("clusters:application", pk=app.pk)
    return _application_page(request, app, status, workload=workload, **{form_name: form})


@login_required
@require_POST
def workload_scale(request: HttpRequest, pk: int, workload_id: int) -> HttpResponse:
    def scale(workload: Workload, data: dict[str, Any]) -> str:
        result = services.workload_scale(
            workload, replicas=data["replicas"], reason=data["reason"], override=data["override"], by=request.user
        )
        return f"{workload} scaled from {result['previous']} to {result['replicas']} replicas."

    return _workload_action(
        request,
        pk,
        workload_id,
        what="clusters.workload.scale",
        form_class=ScaleForm,
        form_name="scale_form",
        act=scale,
    )


@login_required
@require_POST
def workload_restart(request: HttpRequest, pk: int, workload_id: int) -> HttpResponse:
    def restart(workload: Workload, data: dict[str, Any]) -> str:
        services.workload_restart(workload, reason=data["reason"], override=data["override"], by=request.user)
        return f"Rollout restart of {workload} started."

    return _workload_action(
        request,
        pk,
        workload_id,
        what="clusters.workload.restart",
        form_class=RestartForm,
        form_name="restart_form",
        act=restart,
    )
