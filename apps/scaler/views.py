"""Portal pages of the scaler: the fleet of policies and each application's scaling page — live.

Views are thin: selectors read (restricted to the viewer), services write (audited), forms check shapes.
Hidden applications answer 404; visible ones the viewer may not change answer 403 (recorded as denied), and
the buttons they may not use are not shown.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.audit.events import history_of
from apps.clusters.models import Application
from apps.core import portal
from apps.core.access import GLOBAL, Action, can, can_at, restrict
from apps.core.errors import DomainError
from apps.scaler import selectors, services
from apps.scaler.events import FLEET
from apps.scaler.events import application as application_topic
from apps.scaler.forms import FleetFilterForm, PauseForm, PolicyForm, ReasonForm, ReplayForm, policy_initial
from apps.scaler.models import ScalingPolicy

FLEET_PAGE = 50
DECISIONS_PAGE = 20


def _app(request: HttpRequest, application_id: int) -> Application:
    app = selectors.application(request.user, application_id)
    if app is None:
        raise Http404("no such application")
    return app


def _chart_json(chart: selectors.Chart | None) -> dict[str, Any] | None:
    """The chart's data for ``json_script`` (drawn by static/scaler/scaler.js with uPlot)."""
    return chart.as_json() if chart is not None else None


# --- the fleet ------------------------------------------------------------------------------------------------


def _fleet_context(request: HttpRequest) -> dict[str, Any]:
    form = FleetFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    policies = selectors.fleet(
        request.user,
        status=filters.get("status", ""),
        mode=filters.get("mode", ""),
        cluster=filters.get("cluster"),
        search=filters.get("q", ""),
    )
    page: Page[Any] = Paginator(policies, FLEET_PAGE).get_page(filters.get("page"))
    return {"form": form, "filters": filters, "page": page, "query": portal.query_string(filters)}


@login_required
@require_GET
def fleet(request: HttpRequest) -> HttpResponse:
    context = _fleet_context(request)
    context.update(
        selectors.pause_context(request.user),
        clusters=selectors.fleet_clusters(request.user),
        live_topics=FLEET,
        pause_form=PauseForm(),
    )
    return render(request, "scaler/fleet.html", context)


fleet_table = portal.table_view("scaler/_fleet_table.html", _fleet_context)


@login_required
@require_POST
def global_pause(request: HttpRequest) -> HttpResponse:
    if not can_at(request.user, Action.CONFIGURE, GLOBAL):
        portal.deny(request, "scaler.global_pause", None)
    form = PauseForm(request.POST)
    if not form.is_valid():
        missing = ", ".join(sorted(form.errors))
        messages.error(request, f"To pause or resume scaling everywhere, give a reason and confirm ({missing}).")
        return redirect("scaler:fleet")
    on = form.cleaned_data["on"]
    services.global_pause_set(on=on, reason=form.cleaned_data["reason"], by=request.user)
    messages.success(request, "Scaling is paused everywhere." if on else "Scaling resumed everywhere.")
    return redirect("scaler:fleet")


# --- one application --------------------------------------------------------------------------------------------


def _selected(request: HttpRequest, policies: list[ScalingPolicy]) -> ScalingPolicy | None:
    wanted = request.POST.get("policy") if request.method == "POST" else request.GET.get("policy")
    if wanted == "new":
        return None
    if wanted and str(wanted).isdigit():
        for policy in policies:
            if policy.pk == int(wanted):
                return policy
        raise Http404("no such policy")
    return policies[0] if policies else None


def _decisions_context(request: HttpRequest, app: Application) -> dict[str, Any]:
    rows = selectors.decisions(request.user, app)
    page: Page[Any] = Paginator(rows, DECISIONS_PAGE).get_page(request.GET.get("page"))
    return {"app": app, "decisions": page}


def _page(
    request: HttpRequest,
    app: Application,
    *,
    form: PolicyForm | None = None,
    status: int = 200,
    replay: dict[str, Any] | None = None,
) -> HttpResponse:
    user = request.user
    policies = selectors.policies(user, app)
    policy = _selected(request, policies)
    may_configure = can(user, Action.CONFIGURE, policy if policy is not None else app)
    workloads = selectors.workloads(user, app)
    if form is None and may_configure:
        initial, metric_rows, schedule_rows = policy_initial(policy)
        form = PolicyForm(
            initial=initial,
            workloads=[(w.pk, f"{w.kind} {w.name}") for w in workloads],
            metric_rows=metric_rows,
            schedule_rows=schedule_rows,
        )
    topics = [application_topic(app.pk), history_of(policy) if policy else "", history_of(app)]
    context = {
        **selectors.summary_context(user, app),
        **_decisions_context(request, app),
        "policies": policies,
        "policy": policy,
        "form": form,
        "may_configure": may_configure,
        "may_act": can(user, Action.ACT, app),
        "kill_form": ReasonForm(initial={"on": "on"}),
        "replay_form": ReplayForm(initial={"policy": policy.pk if policy else None}),
        "live_topics": ",".join(t for t in topics if t),
        **(replay or {}),
    }
    return render(request, "scaler/application.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def application_scaling(request: HttpRequest, application_id: int) -> HttpResponse:
    app = _app(request, application_id)
    if request.method == "GET":
        return _page(request, app)
    policies = selectors.policies(request.user, app)
    policy = _selected(request, policies)
    if not can(request.user, Action.CONFIGURE, policy if policy is not None else app):
        portal.deny(request, "scaler.policy.update" if policy else "scaler.policy.create", policy or app)
    workloads = selectors.workloads(request.user, app)
    form = PolicyForm(request.POST, workloads=[(w.pk, f"{w.kind} {w.name}") for w in workloads])
    if "add_metric" in request.POST or "add_schedule" in request.POST:
        form.is_valid()
        return _page(request, app, form=form)
    if not form.is_valid():
        return _page(request, app, form=form, status=400)
    values = form.values()
    workload_id = form.cleaned_data.get("workload")
    values["workload"] = next((w for w in workloads if w.pk == workload_id), None)
    if workload_id and values["workload"] is None:
        form.add_error("workload", "not a workload of this application")
        return _page(request, app, form=form, status=400)
    try:
        if policy is None:
            saved = services.policy_create(application=app, by=request.user, **values)
        else:
            saved = services.policy_update(policy, by=request.user, **values)
    except DomainError as exc:
        form.add_service_error(exc.field, exc.message)
        return _page(request, app, form=form, status=exc.status)
    messages.success(request, f"Scaling policy {saved.name} saved (version {saved.version}).")
    return redirect(f"{reverse('scaler:application', args=[app.pk])}?policy={saved.pk}")


@login_required
@require_GET
def decisions_fragment(request: HttpRequest, application_id: int) -> HttpResponse:
    app = _app(request, application_id)
    return render(request, "scaler/_decisions.html", _decisions_context(request, app))


@login_required
@require_GET
def metrics_fragment(request: HttpRequest, application_id: int) -> HttpResponse:
    """The last hour of the policy's metrics (Prometheus) and replicas (decisions), loaded after the page."""
    app = _app(request, application_id)
    policy = _selected(request, selectors.policies(request.user, app))
    history = selectors.metrics_history(request.user, policy) if policy is not None else None
    charts = [(c, _chart_json(c)) for c in (history.charts if history else [])]
    return render(
        request,
        "scaler/_metrics.html",
        {
            "app": app,
            "policy": policy,
            "history": history,
            "charts": charts,
            "replicas_json": _chart_json(history.replicas if history else None),
        },
    )


@login_required
@require_POST
def kill_switch(request: HttpRequest, application_id: int) -> HttpResponse:
    app = _app(request, application_id)
    if not can(request.user, Action.ACT, app):
        portal.deny(request, "scaler.kill_switch", app)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "To turn the kill switch on or off, say why (reason).")
    else:
        on = form.cleaned_data["on"]
        count = services.kill_switch_set(application=app, on=on, reason=form.cleaned_data["reason"], by=request.user)
        state = "on: the scaler writes nothing for" if on else "off: the scaler may write again for"
        messages.success(request, f"Kill switch {state} {app.name} ({count} polic{'y' if count == 1 else 'ies'}).")
    return redirect("scaler:application", application_id=app.pk)


@login_required
@require_POST
def replay_view(request: HttpRequest, application_id: int) -> HttpResponse:
    """Replay a trace with this policy, the HPA's default algorithm and the reactive baseline (computed here,
    bounded in size; nothing is written)."""
    app = _app(request, application_id)
    form = ReplayForm(request.POST)
    comparison, status, error = None, 200, ""
    if form.is_valid():
        policy_id = form.cleaned_data.get("policy")
        policy = None
        if policy_id:
            policy = restrict(
                request.user, Action.READ, ScalingPolicy.objects.filter(application=app, pk=policy_id)
            ).first()
            if policy is None:
                raise Http404("no such policy")
        try:
            comparison = selectors.replay_comparison(request.user, app, policy, form.cleaned_data["trace"])
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            status, error = exc.status, exc.message
    else:
        status = 400
    context = {
        "app": app,
        "replay_form": form,
        "comparison": comparison,
        "error": error,
        "replay_json": _chart_json(comparison.chart) if comparison else None,
    }
    if request.headers.get("HX-Request"):
        return render(request, "scaler/_replay_result.html", context, status=status)
    return _page(request, app, replay=context, status=status)
