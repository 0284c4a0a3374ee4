"""A pod's logs: the recent lines, and the address of the live follow."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from apps.clusters import selectors, services
from apps.clusters.forms import (
    LogForm,
)
from apps.clusters.models import Pod
from apps.clusters.views.applications import application_or_404
from apps.core import portal
from apps.core.access import Action
from apps.core.errors import DomainError

# The live log follow: a websocket at /ws/pods/<id>/logs/ (apps.clusters.consumers.PodLogConsumer).
LOGS_FOLLOW_URL = "/ws/pods/{pod_id}/logs/"


@login_required
@require_GET
def pod_logs(request: HttpRequest, pk: int, pod_id: int) -> HttpResponse:
    app = application_or_404(request, pk)
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
