"""Reading the audit trail: one strict filter used by the portal, the API and the exports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.db.models import Q, QuerySet

from apps.audit.models import ActorKind, AuditEvent, Outcome, Source
from apps.core.access import Action, restrict
from apps.core.errors import DomainError

PAGING_PARAMS = frozenset({"cursor", "limit", "before", "page_size"})


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150, help_text="user name or id")
    actor_kind = forms.ChoiceField(required=False, choices=[("", "any"), *ActorKind.choices])
    action = forms.CharField(required=False, max_length=100, help_text="prefix, e.g. users.user")
    target_type = forms.CharField(required=False, max_length=100)
    target_id = forms.CharField(required=False, max_length=100)
    cluster = forms.CharField(required=False, max_length=100)
    namespace = forms.CharField(required=False, max_length=100)
    application = forms.CharField(required=False, max_length=150)
    outcome = forms.ChoiceField(required=False, choices=[("", "any"), *Outcome.choices])
    source = forms.ChoiceField(required=False, choices=[("", "any"), *Source.choices])
    since = forms.DateTimeField(required=False, help_text="ISO 8601, e.g. 2026-11-01T00:00:00Z")
    until = forms.DateTimeField(required=False)
    q = forms.CharField(required=False, max_length=200, label="Text")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "must not be before since")
        return data


def parse_filters(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate query parameters; unknown names and bad values raise a DomainError naming the parameter."""
    form = AuditFilterForm(params)
    unknown = sorted(set(params) - set(form.fields) - PAGING_PARAMS)
    if unknown:
        raise DomainError(f"unknown filter {unknown[0]!r}; known: {', '.join(form.fields)}", field=unknown[0])
    if not form.is_valid():
        name, errors = next(iter(form.errors.items()))
        raise DomainError(" ".join(str(e) for e in errors), field=name)
    return {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}


def audit_events(*, viewer: Any, filters: Mapping[str, Any] | None = None) -> QuerySet[AuditEvent]:
    """Events the viewer may read (their readable scopes, and their own actions), filtered."""
    queryset = restrict(viewer, Action.READ, AuditEvent.objects.all())
    f = dict(filters or {})
    if "actor" in f:
        queryset = queryset.filter(Q(actor_name__iexact=f["actor"]) | Q(actor_id=f["actor"]))
    exact = {
        "actor_kind": "actor_kind",
        "target_type": "target_type",
        "target_id": "target_id",
        "cluster": "scope_cluster",
        "namespace": "scope_namespace",
        "application": "scope_application",
        "outcome": "outcome",
        "source": "source",
    }
    queryset = queryset.filter(**{column: f[name] for name, column in exact.items() if name in f})
    if "action" in f:
        queryset = queryset.filter(action__startswith=f["action"])
    if "since" in f:
        queryset = queryset.filter(time__gte=f["since"])
    if "until" in f:
        queryset = queryset.filter(time__lte=f["until"])
    if "q" in f:
        text = f["q"]
        queryset = queryset.filter(
            Q(message__icontains=text)
            | Q(target_display__icontains=text)
            | Q(action__icontains=text)
            | Q(actor_name__icontains=text)
        )
    return queryset.order_by("-seq")


def object_history(*, viewer: Any, target_type: str, target_id: str, limit: int = 20) -> list[AuditEvent]:
    """The latest events about one object, for the History panel."""
    return list(
        audit_events(viewer=viewer, filters={"target_type": target_type, "target_id": str(target_id)}).order_by(
            "-time", "-seq"
        )[:limit]
    )
