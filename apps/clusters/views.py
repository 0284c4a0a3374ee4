"""Portal pages of clusters and applications: lists, details, registration, edits and actions — all live.

Views are thin: selectors read (restricted to the viewer), services write (audited), forms check shapes.
Hidden objects answer 404; visible objects the viewer may not act on answer 403 (recorded as denied).
Lists with filters stay live through a small trigger element pushed over the websocket, which makes the
page re-fetch its table with its own filters (see :mod:`apps.clusters.topics`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.audit.events import history_of
from apps.clusters import events, selectors, services
from apps.clusters.credentials import kubeconfig_contexts
from apps.clusters.crypto import decrypt, encrypt
from apps.clusters.forms import (
    MAX_KUBECONFIG_BYTES,
    ApplicationFilterForm,
    ClusterFilterForm,
    ConnectionForm,
    DeleteForm,
    EditForm,
    LogForm,
    ReasonForm,
    RegisterForm,
    RestartForm,
    ScaleForm,
    WorkloadFilterForm,
)
from apps.clusters.models import Application, AuthMode, Cluster, Pod, Workload
from apps.core import portal, registry
from apps.core.access import GLOBAL, Action, can, can_at, is_platform_superuser, scopes_for
from apps.core.errors import DomainError

PAGE = 50
STASH_SECONDS = 900
HISTORY_PANELS = 40  # live history panels of an application's workloads (a websocket follows at most 50 topics)
SECRET_FIELDS = ("token", "ca_data", "kubeconfig_text")  # kept out of error reports


def _page(items: Any, number: Any) -> Page[Any]:
    return portal.paginate(items, number, PAGE)


# --- the kubeconfig, kept encrypted in the session between attempts (never echoed into the page) ---------


@dataclass
class KubeconfigState:
    contexts: list[str] = field(default_factory=list)
    current: str = ""
    kept: bool = False  # received earlier, kept for this form


def _stash_key(scope: str) -> str:
    return f"clusters.kubeconfig.{scope}"


def _stash(request: HttpRequest, scope: str, text: str) -> None:
    request.session[_stash_key(scope)] = {"blob": encrypt({"text": text}).decode(), "at": time.time()}


def _unstash(request: HttpRequest, scope: str) -> str:
    entry = request.session.get(_stash_key(scope))
    if not isinstance(entry, dict) or time.time() - float(entry.get("at", 0)) > STASH_SECONDS:
        request.session.pop(_stash_key(scope), None)
        return ""
    try:
        return str(decrypt(str(entry["blob"]).encode()).get("text") or "")
    except (DomainError, KeyError):
        request.session.pop(_stash_key(scope), None)
        return ""


def _drop_stash(request: HttpRequest, scope: str) -> None:
    request.session.pop(_stash_key(scope), None)


def _kubeconfig(request: HttpRequest, form: ConnectionForm, scope: str, state: KubeconfigState) -> str | None:
    """The kubeconfig to use, or None with an error on the form. Several contexts and none chosen: the
    contexts are listed (the kubeconfig kept) so the user picks one."""
    if "kubeconfig" in form.errors:  # the upload itself was refused (size, encoding)
        return None
    text = form.kubeconfig_given()
    if not text:
        text = _unstash(request, scope)
        state.kept = bool(text)
    if not text:
        form.add_error("kubeconfig", "upload a kubeconfig file or paste it")
        return None
    try:
        state.contexts, state.current = kubeconfig_contexts(text)
    except DomainError as exc:
        _drop_stash(request, scope)
        state.kept = False
        form.add_error("kubeconfig", exc.message)
        return None
    _stash(request, scope, text)
    if len(state.contexts) > 1 and not form.cleaned_data.get("context"):
        form.add_error("context", f"this kubeconfig has {len(state.contexts)} contexts: choose one")
        return None
    return text


def _wants_kubeconfig(form: ConnectionForm) -> bool:
    return form.data.get("auth_mode") == AuthMode.KUBECONFIG


def _service_error(form: Any, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _connection_state(request: HttpRequest, scope: str) -> KubeconfigState:
    """On a first visit, what a kept kubeconfig offers (after an earlier attempt in this session)."""
    state = KubeconfigState()
    text = _unstash(request, scope)
    if text:
        try:
            state.contexts, state.current = kubeconfig_contexts(text)
            state.kept = True
        except DomainError:
            _drop_stash(request, scope)
    return state


# --- clusters --------------------------------------------------------------------------------------------


def _may_register(user: Any) -> bool:
    """Rule: registering a cluster is configuring at global scope (a cluster binding cannot name a cluster
    that does not exist yet)."""
    return can_at(user, Action.CONFIGURE, GLOBAL)


def _clusters_table_context(request: HttpRequest) -> dict[str, Any]:
    form = ClusterFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    clusters = selectors.cluster_list(request.user, status=filters.get("status", ""), search=filters.get("q", ""))
    page = _page(clusters, filters.get("page"))
    query = portal.query_string(filters)
    return {"form": form, "page": page, "filtered": bool(query), "query": query}


@login_required
@require_GET
def cluster_list(request: HttpRequest) -> HttpResponse:
    context = _clusters_table_context(request)
    context.update(may_register=_may_register(request.user), live_topics=events.CLUSTERS)
    return render(request, "clusters/cluster_list.html", context)


@login_required
@require_GET
def cluster_table(request: HttpRequest) -> HttpResponse:
    return render(request, "clusters/_cluster_table.html", _clusters_table_context(request))


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters(*SECRET_FIELDS)
def cluster_register(request: HttpRequest) -> HttpResponse:
    if not _may_register(request.user):
        portal.deny(request, "clusters.cluster.register", None)
    form = RegisterForm(request.POST or None, request.FILES or None)
    state = _connection_state(request, "new") if request.method == "GET" else KubeconfigState()
    status = 200
    if request.method == "POST":
        status = 400
        form.is_valid()
        kubeconfig = _kubeconfig(request, form, "new", state) if _wants_kubeconfig(form) else ""
        if form.is_valid() and kubeconfig is not None:
            data = form.cleaned_data
            try:
                cluster = services.cluster_register(
                    name=data["name"],
                    description=data.get("description") or "",
                    sync_interval_seconds=data.get("sync_interval_seconds"),
                    by=request.user,
                    **form.connection(kubeconfig),
                )
            except DomainError as exc:
                _service_error(form, exc)
                status = exc.status
            else:
                _drop_stash(request, "new")
                messages.success(request, f"Cluster {cluster.name} registered; its first full sync is under way.")
                return redirect("clusters:detail", pk=cluster.pk)
    return render(request, "clusters/cluster_form.html", {"form": form, "kubeconfig": state, "mode": "register"},
                  status=status)  # fmt: skip


@login_required
@require_POST
@sensitive_post_parameters(*SECRET_FIELDS)
def kubeconfig_contexts_fragment(request: HttpRequest) -> HttpResponse:
    """The contexts of a kubeconfig being uploaded (htmx: fills the context chooser before submitting)."""
    if not _may_register(request.user) and not _may_edit_somewhere(request.user):
        portal.deny(request, "clusters.kubeconfig.contexts", None)
    upload = request.FILES.get("kubeconfig")
    text, error = "", ""
    if upload is not None:
        if upload.size and upload.size > MAX_KUBECONFIG_BYTES:
            error = f"larger than {MAX_KUBECONFIG_BYTES // 1024} KiB; is this a kubeconfig?"
        else:
            text = upload.read().decode("utf-8", errors="replace")
    text = text or request.POST.get("kubeconfig_text", "")
    state = KubeconfigState()
    if text and not error:
        try:
            state.contexts, state.current = kubeconfig_contexts(text)
        except DomainError as exc:
            error = exc.message
    return render(request, "clusters/_contexts.html",
                  {"kubeconfig": state, "error": error, "chosen": request.POST.get("context", "")})  # fmt: skip


def _may_edit_somewhere(user: Any) -> bool:
    return is_platform_superuser(user) or bool(scopes_for(user, Action.CONFIGURE))


def _cluster(request: HttpRequest, pk: int) -> Cluster:
    return selectors.visible(request.user, Cluster.objects.all(), pk)


def _cluster_workloads_context(request: HttpRequest, cluster: Cluster) -> dict[str, Any]:
    form = WorkloadFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    workloads = selectors.cluster_workloads(
        request.user,
        cluster,
        namespace=filters.get("namespace", ""),
        kind=filters.get("kind", ""),
        search=filters.get("q", ""),
    )
    return {
        "cluster": cluster,
        "workload_form": form,
        "workloads": _page(workloads, filters.get("page")),
        "workload_namespaces": selectors.workload_namespaces(request.user, cluster),
        "query": portal.query_string(filters),
    }


@login_required
@require_GET
def cluster_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    context = {
        **selectors.cluster_health(request.user, cluster),
        **_cluster_workloads_context(request, cluster),
        "nodes": selectors.cluster_nodes(request.user, cluster),
        "namespaces": selectors.cluster_namespaces(request.user, cluster),
        "warnings": selectors.cluster_warnings(request.user, cluster),
        "may_configure": can(request.user, Action.CONFIGURE, cluster),
        "may_act": can(request.user, Action.ACT, cluster),
        "reason_form": ReasonForm(),
        "tabs": registry.tabs_for("clusters.cluster", cluster, request.user),
        "live_topics": portal.live(events.cluster(cluster.pk), history_of(cluster)),
    }
    return render(request, "clusters/cluster_detail.html", context)


@login_required
@require_GET
def cluster_workloads_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    return render(request, "clusters/_cluster_workloads.html", _cluster_workloads_context(request, cluster))


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters(*SECRET_FIELDS)
def cluster_edit(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    portal.require(request, Action.CONFIGURE, cluster, "clusters.cluster.update")
    scope = f"edit-{cluster.pk}"
    initial = {
        "description": cluster.description,
        "sync_interval_seconds": cluster.sync_interval_seconds,
        "auth_mode": cluster.auth_mode,
        "api_url": cluster.api_url,
        "context": cluster.kubeconfig_context,
        "allow_insecure": cluster.allow_insecure,
    }
    form = EditForm(request.POST or None, request.FILES or None, initial=initial)
    state = _connection_state(request, scope) if request.method == "GET" else KubeconfigState()
    status = 200
    if request.method == "POST":
        status = 400
        form.is_valid()
        replace = bool(form.cleaned_data.get("replace_credentials"))
        if replace and not form.cleaned_data.get("auth_mode") and "auth_mode" not in form.errors:
            form.add_error("auth_mode", "say how ICC should connect")
        kubeconfig = _kubeconfig(request, form, scope, state) if replace and _wants_kubeconfig(form) else ""
        if form.is_valid() and kubeconfig is not None:
            data = form.cleaned_data
            try:
                services.cluster_update(
                    cluster,
                    description=data.get("description") or "",
                    sync_interval_seconds=data["sync_interval_seconds"],
                    connection=form.connection(kubeconfig) if replace else None,
                    by=request.user,
                )
            except DomainError as exc:
                _service_error(form, exc)
                status = exc.status
            else:
                _drop_stash(request, scope)
                messages.success(request, f"Cluster {cluster.name} updated.")
                return redirect("clusters:detail", pk=cluster.pk)
    return render(request, "clusters/cluster_form.html",
                  {"form": form, "kubeconfig": state, "mode": "edit", "cluster": cluster}, status=status)  # fmt: skip


def _set_paused(request: HttpRequest, pk: int, *, paused: bool) -> HttpResponse:
    cluster = _cluster(request, pk)
    what = "clusters.cluster.pause" if paused else "clusters.cluster.resume"
    portal.require(request, Action.CONFIGURE, cluster, what)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"To {'pause' if paused else 'resume'} {cluster.name}, say why (reason).")
    else:
        services.cluster_set_paused(cluster, paused=paused, reason=form.cleaned_data["reason"], by=request.user)
        messages.success(request, f"Cluster {cluster.name} {'paused' if paused else 'resumed'}.")
    return redirect("clusters:detail", pk=cluster.pk)


@login_required
@require_POST
def cluster_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_paused(request, pk, paused=True)


@login_required
@require_POST
def cluster_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_paused(request, pk, paused=False)


@login_required
@require_POST
def cluster_sync(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    portal.require(request, Action.ACT, cluster, "clusters.cluster.sync")
    try:
        services.cluster_sync_request(cluster=cluster, by=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"A full sync of {cluster.name} is queued.")
    return redirect("clusters:detail", pk=cluster.pk)


@login_required
@require_http_methods(["GET", "POST"])
def cluster_delete(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(request, pk)
    portal.require(request, Action.CONFIGURE, cluster, "clusters.cluster.delete")
    form = DeleteForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.cluster_delete(
                    cluster,
                    confirm=form.cleaned_data["confirm"],
                    reason=form.cleaned_data.get("reason") or "",
                    by=request.user,
                )
            except DomainError as exc:
                _service_error(form, exc)
            else:
                messages.success(request, f"Cluster {form.cleaned_data['confirm']} and its observed data removed.")
                return redirect("clusters:list")
    counts = selectors.cluster_removal_counts(request.user, cluster)
    return render(request, "clusters/cluster_delete.html", {"cluster": cluster, "form": form, "counts": counts},
                  status=status)  # fmt: skip


# --- applications ----------------------------------------------------------------------------------------


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
    page = _page(apps, filters.get("page"))
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


@login_required
@require_GET
def application_table(request: HttpRequest) -> HttpResponse:
    return render(request, "clusters/_application_table.html", _applications_table_context(request))


def _application(request: HttpRequest, pk: int) -> Application:
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
    return _application_page(request, _application(request, pk))


def _workload(request: HttpRequest, app: Application, workload_id: int, what: str) -> Workload:
    workload = selectors.visible(request.user, Workload.objects.filter(application=app).select_related("cluster"),
                                 workload_id)  # fmt: skip
    portal.require(request, Action.ACT, workload, what)
    return workload


@login_required
@require_POST
def workload_scale(request: HttpRequest, pk: int, workload_id: int) -> HttpResponse:
    app = _application(request, pk)
    workload = _workload(request, app, workload_id, "clusters.workload.scale")
    form = ScaleForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            result = services.workload_scale(
                workload, replicas=form.cleaned_data["replicas"], reason=form.cleaned_data["reason"], by=request.user
            )
        except DomainError as exc:
            _service_error(form, exc)
            status = exc.status
        else:
            messages.success(request, f"{workload} scaled from {result['previous']} to {result['replicas']} replicas.")
            return redirect("clusters:application", pk=app.pk)
    return _application_page(request, app, status, scale_form=form, workload=workload)


@login_required
@require_POST
def workload_restart(request: HttpRequest, pk: int, workload_id: int) -> HttpResponse:
    app = _application(request, pk)
    workload = _workload(request, app, workload_id, "clusters.workload.restart")
    form = RestartForm(request.POST)
    status = 400
    if form.is_valid():
        try:
            services.workload_restart(workload, reason=form.cleaned_data["reason"], by=request.user)
        except DomainError as exc:
            _service_error(form, exc)
            status = exc.status
        else:
            messages.success(request, f"Rollout restart of {workload} started.")
            return redirect("clusters:application", pk=app.pk)
    return _application_page(request, app, status, restart_form=form, workload=workload)


# The live log follow: a websocket at /ws/pods/<id>/logs/ (apps.clusters.consumers.PodLogConsumer).
LOGS_FOLLOW_URL = "/ws/pods/{pod_id}/logs/"


@login_required
@require_GET
def pod_logs(request: HttpRequest, pk: int, pod_id: int) -> HttpResponse:
    app = _application(request, pk)
    pod = selectors.visible(request.user, Pod.objects.filter(application=app).select_related("cluster"), pod_id)
    portal.require(request, Action.ACT, pod, "clusters.pod.logs")
    form = LogForm(request.GET or None)
    filters = portal.valid_filters(form)
    lines: list[str] = []
    error = ""
    status = 200
    container = filters.get("container") or ""
    try:
        lines = services.pod_logs(pod, container=container, tail_lines=filters.get("tail_lines") or 100)
    except DomainError as exc:
        error = f"{exc.field}: {exc.message}" if exc.field else exc.message
        status = exc.status
    containers = [str(c.get("name")) for c in pod.containers if c.get("name")]
    context = {
        "app": app,
        "pod": pod,
        "form": form,
        "lines": lines,
        "error": error,
        "containers": containers,
        "container": container or (containers[0] if containers else ""),
        "follow_url": LOGS_FOLLOW_URL.format(pod_id=pod.pk),
        "back": reverse("clusters:application", args=[app.pk]),
    }
    return render(request, "clusters/pod_logs.html", context, status=status)
