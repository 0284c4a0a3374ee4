"""Deleting one pod from the portal: a confirmation page (what happens, the change freeze if one is on, a reason
and the override), then the service; its controller replaces the pod."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from apps.clusters import selectors, services
from apps.clusters.forms import PodDeleteForm
from apps.clusters.models import Pod
from apps.clusters.services.pods import pod_freeze_scope
from apps.clusters.views.applications import application_or_404
from apps.clusters.views.kubeconfig_stash import service_error
from apps.core import calendar, portal
from apps.core.access import Action
from apps.core.errors import DomainError


@login_required
@require_http_methods(["GET", "POST"])
def pod_delete(request: HttpRequest, pk: int, pod_id: int) -> HttpResponse:
    app = application_or_404(request, pk)
    pods = Pod.objects.filter(application=app).select_related("cluster", "workload", "application")
    pod = selectors.visible(request.user, pods, pod_id)
    portal.require(request, Action.ACT, pod.workload or pod, "clusters.pod.delete")
    form = PodDeleteForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                services.pod_delete(
                    pod=pod, reason=form.cleaned_data["reason"], override=form.cleaned_data["override"], by=request.user
                )
            except DomainError as exc:
                service_error(form, exc)
                status = exc.status
            else:
                messages.success(request, f"Pod {pod.name} deleted; its controller replaces it.")
                return redirect("clusters:application", pk=app.pk)
    context = {
        "app": app,
        "pod": pod,
        "form": form,
        "freeze": calendar.frozen(pod_freeze_scope(pod)),
        "back": reverse("clusters:application", args=[app.pk]),
    }
    return render(request, "clusters/pod_delete.html", context, status=status)
