"""Portal pages of the admission webhook: which clusters have one, and per cluster its settings, the generated
ValidatingWebhookConfiguration (token masked on the page; the download carries it and is recorded), and the
actions: apply to the cluster, rotate the token, remove (typed cluster name). Configure rights on the cluster are
needed for every change and for the download; readers of the cluster see the settings."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.clusters.models import Cluster
from apps.compliance import webhook_config
from apps.compliance.models import AdmissionWebhook, FailurePolicy
from apps.compliance.services import webhooks as services
from apps.core import portal
from apps.core.access import Action, can, restrict
from apps.core.errors import DomainError


class WebhookForm(forms.Form):
    failure_policy = forms.ChoiceField(choices=FailurePolicy.choices, widget=forms.RadioSelect)
    timeout_seconds = forms.IntegerField(min_value=services.MIN_TIMEOUT, max_value=services.MAX_TIMEOUT)


class RemoveForm(forms.Form):
    confirm = forms.CharField(max_length=63, required=False, label="Type the cluster's name to confirm")


def _cluster(request: HttpRequest, cluster_id: int) -> Cluster:
    found = restrict(request.user, Action.READ, Cluster.objects.all()).filter(pk=cluster_id).first()
    if found is None:
        raise Http404("no such cluster")
    return found


@login_required
@require_GET
def webhook_list(request: HttpRequest) -> HttpResponse:
    clusters = list(restrict(request.user, Action.READ, Cluster.objects.all()).order_by("name"))
    hooks = {w.cluster_id: w for w in AdmissionWebhook.objects.filter(cluster__in=clusters)}
    rows = [{"cluster": c, "webhook": hooks.get(c.pk)} for c in clusters]
    return render(request, "compliance/webhooks.html", {"rows": rows})


def _page(request: HttpRequest, cluster: Cluster, *, status: int = 200, **extra: Any) -> HttpResponse:
    webhook = AdmissionWebhook.objects.filter(cluster=cluster).first()
    preview, problem = "", ""
    if webhook is not None:
        try:
            preview = webhook_config.as_yaml(webhook_config.configuration(webhook, masked=True))
        except DomainError as exc:
            problem = exc.message
    context = {
        "cluster": cluster,
        "webhook": webhook,
        "preview": preview,
        "problem": problem,
        "may_configure": can(request.user, Action.CONFIGURE, cluster),
        "form": WebhookForm(
            initial={
                "failure_policy": webhook.failure_policy if webhook else FailurePolicy.IGNORE,
                "timeout_seconds": webhook.timeout_seconds if webhook else 5,
            }
        ),
        "remove_form": RemoveForm(),
        **extra,
    }
    return render(request, "compliance/webhook.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def webhook_detail(request: HttpRequest, cluster_id: int) -> HttpResponse:
    cluster = _cluster(request, cluster_id)
    if request.method == "GET":
        return _page(request, cluster)
    portal.require(request, Action.CONFIGURE, cluster, "compliance.webhook.configure")
    form = WebhookForm(request.POST)
    if not form.is_valid():
        return _page(request, cluster, form=form, status=400)
    try:
        services.webhook_configure(cluster=cluster, by=request.user, **form.cleaned_data)
    except DomainError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _page(request, cluster, form=form, status=exc.status)
    messages.success(request, "Webhook settings saved. Apply (or download) the configuration for them to count.")
    return redirect("compliance:webhook", cluster_id=cluster.pk)


def _webhook(request: HttpRequest, cluster: Cluster, what: str) -> AdmissionWebhook:
    portal.require(request, Action.CONFIGURE, cluster, what)
    webhook = AdmissionWebhook.objects.filter(cluster=cluster).select_related("cluster").first()
    if webhook is None:
        raise Http404("this cluster has no webhook settings yet")
    return webhook


@login_required
@require_GET
def webhook_download(request: HttpRequest, cluster_id: int) -> HttpResponse:
    cluster = _cluster(request, cluster_id)
    webhook = _webhook(request, cluster, "compliance.webhook.download")
    try:
        manifest = services.webhook_download(webhook=webhook, by=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("compliance:webhook", cluster_id=cluster.pk)
    response = HttpResponse(webhook_config.as_yaml(manifest), content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="{webhook_config.NAME}-{cluster.name}.yaml"'
    return response


@login_required
@require_POST
def webhook_action(request: HttpRequest, cluster_id: int, verb: str) -> HttpResponse:
    cluster = _cluster(request, cluster_id)
    webhook = _webhook(request, cluster, f"compliance.webhook.{verb}")
    try:
        if verb == "apply":
            applied = services.webhook_apply(webhook=webhook, by=request.user)
            messages.success(request, f"Applied {applied['name']} to {cluster.name}: admission is checked now.")
        elif verb == "rotate":
            services.webhook_rotate_token(webhook=webhook, by=request.user)
            messages.success(request, "New token. Apply (or download) the configuration again: the old URL is dead.")
        elif verb == "remove":
            form = RemoveForm(request.POST)
            confirm = form.cleaned_data["confirm"] if form.is_valid() else ""
            services.webhook_remove(webhook=webhook, confirm=confirm, by=request.user)
            messages.success(request, f"Removed the webhook from {cluster.name}.")
        else:
            raise Http404("no such action")
    except DomainError as exc:
        messages.error(request, f"{exc.message}")
        return _page(request, cluster, status=exc.status)
    return redirect("compliance:webhook", cluster_id=cluster.pk)
