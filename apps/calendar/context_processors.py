"""The banner on affected pages: the freezes and maintenance windows active now for the page's scope (an
application's page: that application; a cluster's page: that cluster; elsewhere: global ones). Evaluated only when
a page renders it (a callable), answered from the in-memory calendar."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString, mark_safe

from apps.calendar import selectors
from apps.clusters.models import Application, Cluster
from apps.core.access import Action, Scope, ScopeKind, restrict


def page_scope(request: HttpRequest) -> Scope:
    match = getattr(request, "resolver_match", None)
    user = getattr(request, "user", None)
    pk = (match.kwargs.get("pk") if match else None) or None
    if match is None or pk is None:
        return Scope()
    if match.view_name == "clusters:application":
        app = restrict(user, Action.READ, Application.objects.all()).filter(pk=pk).first()
        if app is not None:
            return Scope(ScopeKind.APPLICATION, str(app.cluster_id), app.namespace, app.name)
    elif (
        match.view_name == "clusters:detail"
        and restrict(user, Action.READ, Cluster.objects.all()).filter(pk=pk).exists()
    ):
        return Scope(ScopeKind.CLUSTER, str(pk))
    return Scope()


def _render(request: HttpRequest) -> SafeString:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return mark_safe("")
    windows = selectors.banner(page_scope(request))
    return mark_safe(render_to_string("calendar/_banner.html", {"windows": windows}))  # noqa: S308 - rendered, escaped


def banner(request: HttpRequest) -> dict[str, Any]:
    return {"page_banners": lambda: _render(request)}
