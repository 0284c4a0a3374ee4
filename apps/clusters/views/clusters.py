"""The clusters pages: list, registration, detail, edit, pause and resume, sync, delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.audit.events import history_of
from apps.clusters import events, selectors, services
from apps.clusters.credentials import kubeconfig_contexts
from apps.clusters.forms import (
    MAX_KUBECONFIG_BYTES,
    ClusterFilterForm,
    DeleteForm,
    EditForm,
    ReasonForm,
    RegisterForm,
    WorkloadFilterForm,
)
from apps.clusters.models import Cluster
from apps.clusters.views.common import page_of
from apps.clusters.views.kubeconfig_stash import (
    SECRET_FIELDS,
    KubeconfigState,
    connection_state,
    drop_stash,
    kubeconfig_from_form,
    service_error,
    wants_kubeconfig,
)
from apps.core import portal, registry
from apps.core.access import GLOBAL, Action, can, can_at, is_platform_superuser, scopes_for
from apps.core.errors import DomainError


def _may_register(user: Any) -> bool:
    """Rule: registering a cluster is configuring at global scope (a cluster binding cannot name a cluster
    that does not exist yet)."""
    return can_at(user, Action.CONFIGURE, GLOBAL)


def _clusters_table_context(request: HttpRequest) -> dict[str, Any]:
    form = ClusterFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    clusters = selectors.cluster_list(request.user, status=filters.get("status", ""), search=filters.get("q", ""))
    page = page_of(clusters, filters.get("page"))
    query = portal.query_string(filters)
    return {"form": form, "page": page, "filtered": bool(query), "query": query}


@login_required
@require_GET
def cluster_list(request: HttpRequest) -> HttpResponse:
    context = _clusters_table_context(request)
    context.update(may_register=_may_register(request.user), live_topics=events.CLUSTERS)
    return render(request, "clusters/cluster_list.html", context)


cluster_table = portal.table_view("clusters/_cluster_table.html", _clusters_table_context)


@login_required
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters(*SECRET_FIELDS)
def cluster_register(request: HttpRequest) -> HttpResponse:
    if not _may_register(request.user):
        portal.deny(request, "clusters.cluster.register", None)
    form = RegisterForm(request.POST or None, request.FILES or None)
    state = connection_state(request, "new") if request.method == "GET" else KubeconfigState()
    status = 200
    if request.method == "POST":
        status = 400
        form.is_valid()
        kubeconfig = kubeconfig_from_form(request, form, "new", state) if wants_kubeconfig(form) else ""
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
                service_error(form, exc)
                status = exc.status
            else:
                drop_stash(request, "new")
                messages.success(request, f"Cluster {cluster.name} registered; its first full sync is under way.")
                return redirect("clusters:detail", pk=cluster.pk)
    return render(
        request, "clusters/cluster_form.html", {"form": form, "kubeconfig": state, "mode": "register"}, status=status
    )


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
    return render(
        request,
        "clusters/_contexts.html",
        {"kubeconfig": state, "error": error, "chosen": request.POST.get("context", "")},
    )


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
        "workloads": page_of(workloads, filters.get("page")),
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
    state = connection_state(request, scope) if request.method == "GET" else KubeconfigState()
    status = 200
    if request.method == "POST":
        status = 400
        form.is_valid()
        replace = bool(form.cleaned_data.get("replace_credentials"))
        if replace and not form.cleaned_data.get("auth_mode") and "auth_mode" not in form.errors:
            form.add_error("auth_mode", "say how ICC should connect")
        kubeconfig = kubeconfig_from_form(request, form, scope, state) if replace and wants_kubeconfig(form) else ""
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
                service_error(form, exc)
                status = exc.status
            else:
                drop_stash(request, scope)
                messages.success(request, f"Cluster {cluster.name} updated.")
                return redirect("clusters:detail", pk=cluster.pk)
    return render(
        request,
        "clusters/cluster_form.html",
        {"form": form, "kubeconfig": state, "mode": "edit", "cluster": cluster},
        status=status,
    )


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
                service_error(form, exc)
            else:
                messages.success(request, f"Cluster {form.cleaned_data['confirm']} and its observed data removed.")
                return redirect("clusters:list")
    counts = selectors.cluster_removal_counts(request.user, cluster)
    return render(
        request, "clusters/cluster_delete.html", {"cluster": cluster, "form": form, "counts": counts}, status=status
    )
