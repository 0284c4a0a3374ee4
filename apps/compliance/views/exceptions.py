"""Portal pages of compliance exceptions: the list (state filter, an expiring-soon section), the request form and
one exception's page with approve (offered only to someone else with configure rights: four eyes) and revoke
(confirmed, with a reason).

Views are thin: the forms check shapes, the exception selectors read (restricted to the viewer's scopes), the
services check rights and rules and write. An exception outside the viewer's scopes answers 404; a refused action
403 (recorded as denied).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.compliance import exception_selectors as selectors
from apps.compliance import selectors as result_selectors
from apps.compliance.models import ExceptionState, Policy, PolicyException
from apps.compliance.services import exceptions as services
from apps.core import portal
from apps.core.access import Action, ScopeKind, can_at, is_platform_superuser, scopes_for
from apps.core.errors import DomainError, ForbiddenError

EXCEPTIONS_PAGE = 50
REQUEST_FIELDS = (
    "policy",
    "check_id",
    "scope_kind",
    "scope_cluster",
    "scope_namespace",
    "scope_application",
    "match_names",
    "match_labels",
    "image_pattern",
    "reason",
    "owner",
    "ticket_url",
    "expires_at",
)


class ExceptionFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=[("", "any state"), *ExceptionState.choices])
    policy = forms.SlugField(required=False, max_length=100)
    page = forms.IntegerField(required=False, min_value=1)


def _lines(text: str) -> list[str]:
    return [part.strip() for chunk in text.splitlines() for part in chunk.split(",") if part.strip()]


class ExceptionRequestForm(forms.Form):
    """Shapes only; the service checks the rules (scope, expiry within the maximum, the check's policy)."""

    policy = forms.ChoiceField()
    check_id = forms.CharField(required=False, max_length=200, label="Check", help_text="empty: the whole policy")
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, initial=ScopeKind.APPLICATION, label="Scope")
    scope_cluster = forms.ChoiceField(required=False, label="Cluster")
    scope_namespace = forms.CharField(required=False, max_length=253, label="Namespace")
    scope_application = forms.CharField(required=False, max_length=253, label="Application")
    match_names = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Workload names",
        help_text="shell patterns such as web-*, one per line or comma-separated; empty: any name",
    )
    match_labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Labels",
        help_text="key=value, one per line; all must match; empty: any labels",
    )
    image_pattern = forms.CharField(
        required=False, max_length=300, label="Image pattern", help_text="e.g. registry.local/legacy/*; empty: any"
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    owner = forms.CharField(max_length=150, help_text="who answers for it (a person or team)")
    ticket_url = forms.URLField(required=False, max_length=500, label="Ticket link", assume_scheme="https")
    expires_at = forms.DateTimeField(
        label="Expires at (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def __init__(self, *args: Any, policies: list[str], clusters: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_days = settings.COMPLIANCE_EXCEPTION_MAX_DAYS
        policy, cluster = self.fields["policy"], self.fields["scope_cluster"]
        assert isinstance(policy, forms.ChoiceField)
        assert isinstance(cluster, forms.ChoiceField)
        policy.choices = [(key, key) for key in policies]
        cluster.choices = [("", "—"), *((str(c.pk), c.name) for c in clusters)]
        self.fields["expires_at"].help_text = f"required; at most {self.max_days} days from now (an admin's maximum)"

    def clean_match_names(self) -> list[str]:
        return _lines(self.cleaned_data.get("match_names") or "")

    def clean_match_labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for line in (self.cleaned_data.get("match_labels") or "").splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"{line.strip()!r} is not key=value")
            labels[key.strip()] = value.strip()
        return labels

    def clean_expires_at(self) -> datetime:
        moment: datetime = self.cleaned_data["expires_at"]
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def values(self) -> dict[str, Any]:
        values = {name: self.cleaned_data.get(name) for name in REQUEST_FIELDS}
        values["policy"] = Policy.objects.get(key=values["policy"])
        return {k: "" if v is None else v for k, v in values.items()}


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="why it ends (audited)")
    confirm = forms.BooleanField(label="Yes, end this exception now")


def _exception(request: HttpRequest, pk: int) -> PolicyException:
    found = selectors.exception(request.user, pk)
    if found is None:
        raise Http404("no such exception")
    return found


def _with_state(rows: Any, now: datetime) -> list[PolicyException]:
    found = list(rows)
    for row in found:
        row.state = row.state_at(now)
    return found


def _may_request(user: Any) -> bool:
    """Rule: the form is offered to whoever may act somewhere (the service checks the exception's scope)."""
    return is_platform_superuser(user) or bool(scopes_for(user, Action.ACT))


def _refused(request: HttpRequest, exc: DomainError, what: str, target: Any) -> None:
    if isinstance(exc, ForbiddenError):
        portal.deny(request, what, target)


@login_required
@require_GET
def exception_list(request: HttpRequest) -> HttpResponse:
    form = ExceptionFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    now = datetime.now(UTC)
    rows = selectors.exceptions(request.user, state=filters.get("state", ""), policy=filters.get("policy", ""), now=now)
    page = portal.paginate(rows, filters.get("page"), EXCEPTIONS_PAGE)
    page.object_list = _with_state(page.object_list, now)
    context = {
        "form": form,
        "filters": filters,
        "page": page,
        "query": portal.query_string(filters),
        "expiring": _with_state(selectors.expiring_soon(request.user), now),
        "expiring_days": selectors.EXPIRING_SOON_DAYS,
        "may_request": _may_request(request.user),
        "states": ExceptionState.choices,
    }
    return render(request, "compliance/exceptions.html", context)


def _request_form(request: HttpRequest, data: Any = None) -> ExceptionRequestForm:
    initial = {k: v for k, v in request.GET.items() if k in REQUEST_FIELDS} if data is None else None
    policies = list(Policy.objects.order_by("key").values_list("key", flat=True))
    return ExceptionRequestForm(
        data, initial=initial, policies=policies, clusters=result_selectors.clusters(request.user)
    )


@login_required
@require_http_methods(["GET", "POST"])
def exception_new(request: HttpRequest) -> HttpResponse:
    if not _may_request(request.user):
        portal.deny(request, "compliance.exception.request", None)
    if request.method == "GET":
        return render(request, "compliance/exception_new.html", {"form": _request_form(request)})
    form = _request_form(request, request.POST)
    if not form.is_valid():
        return render(request, "compliance/exception_new.html", {"form": form}, status=400)
    try:
        exception = services.exception_request(by=request.user, **form.values())
    except DomainError as exc:
        _refused(request, exc, "compliance.exception.request", None)
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return render(request, "compliance/exception_new.html", {"form": form}, status=exc.status)
    messages.success(request, "Exception requested: it applies once someone else with configure rights approves.")
    return redirect("compliance:exception", pk=exception.pk)


def _detail(
    request: HttpRequest, exception: PolicyException, *, revoke_form: RevokeForm | None = None, status: int = 200
) -> HttpResponse:
    user = request.user
    state = exception.state_at(datetime.now(UTC))
    may_configure = can_at(user, Action.CONFIGURE, exception.scope())
    context = {
        "exception": exception,
        "state": state,
        "may_approve": state == ExceptionState.PENDING and may_configure and exception.requested_by_id != user.pk,
        "own_request": exception.requested_by_id == user.pk,
        "may_revoke": state in (ExceptionState.PENDING, ExceptionState.ACTIVE) and may_configure,
        "revoke_form": revoke_form or RevokeForm(),
        "covered": selectors.covered_results(user, exception),
        "covered_shown": selectors.COVERED_SHOWN,
    }
    return render(request, "compliance/exception.html", context, status=status)


@login_required
@require_GET
def exception_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, _exception(request, pk))


@login_required
@require_POST
def exception_approve(request: HttpRequest, pk: int) -> HttpResponse:
    exception = _exception(request, pk)
    try:
        services.exception_approve(exception=exception, by=request.user)
    except DomainError as exc:
        _refused(request, exc, "compliance.exception.approve", exception)
        messages.error(request, exc.message)
        return _detail(request, exception, status=exc.status)
    messages.success(request, "Exception approved: it applies from the next evaluation, which starts now.")
    return redirect("compliance:exception", pk=exception.pk)


@login_required
@require_POST
def exception_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    exception = _exception(request, pk)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        if not can_at(request.user, Action.CONFIGURE, exception.scope()):
            portal.deny(request, "compliance.exception.revoke", exception)
        return _detail(request, exception, revoke_form=form, status=400)
    try:
        services.exception_revoke(exception=exception, by=request.user, reason=form.cleaned_data["reason"])
    except DomainError as exc:
        _refused(request, exc, "compliance.exception.revoke", exception)
        form.add_error("reason" if exc.field == "reason" else None, exc.message)
        return _detail(request, exception, revoke_form=form, status=exc.status)
    messages.success(request, "Exception revoked: the covered results fail again at the next evaluation.")
    return redirect("compliance:exception", pk=exception.pk)
