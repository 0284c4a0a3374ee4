"""A result's page: the check's title, description and remediation, the fix as a JSON Patch and as the equivalent
``kubectl patch`` command, and (for operators of the workload) a form that applies the fix: a reason and a
confirmation. After it the watcher sees the change and the workload is re-evaluated; the page shows the new result.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.compliance.checks import check_get
from apps.compliance.models import Policy, Result, ResultStatus
from apps.compliance.services import fixes
from apps.core import portal
from apps.core.access import Action, can, restrict
from apps.core.errors import DomainError, ForbiddenError


class FixForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="why (audited)")
    confirm = forms.BooleanField(label="Yes, patch the workload in its cluster now")
    override = forms.BooleanField(required=False, label="Override a change freeze (audited)")


def _result(request: HttpRequest, pk: int) -> Result:
    rows = restrict(request.user, Action.READ, Result.objects.select_related("workload", "cluster", "application"))
    found = rows.filter(pk=pk).first()
    if found is None:
        raise Http404("no such result")
    return found


def _about(result: Result) -> dict[str, str]:
    """The check's words: a built-in check's own, else the custom policy's."""
    try:
        check = check_get(result.check_id)
    except KeyError:
        policy = Policy.objects.filter(key=result.policy).first()
        return {"title": result.check_id, "description": policy.description if policy else "", "remediation": ""}
    return {"title": check.title, "description": check.description, "remediation": check.remediation}


def _page(request: HttpRequest, result: Result, *, form: FixForm | None = None, status: int = 200) -> HttpResponse:
    patch = fixes.fix_patch(result)
    context: dict[str, Any] = {
        "result": result,
        "about": _about(result),
        "patch": json.dumps(patch, indent=2) if patch else "",
        "kubectl": fixes.kubectl_patch(result),
        "may_fix": bool(patch) and result.status in fixes.FIXABLE and can(request.user, Action.ACT, result.workload),
        "failing": result.status in (ResultStatus.FAIL, ResultStatus.ERROR),
        "form": form or FixForm(),
    }
    return render(request, "compliance/result.html", context, status=status)


@login_required
@require_GET
def result_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _page(request, _result(request, pk))


@login_required
@require_POST
def result_fix(request: HttpRequest, pk: int) -> HttpResponse:
    result = _result(request, pk)
    portal.require(request, Action.ACT, result.workload, "compliance.result.fix")
    form = FixForm(request.POST)
    if not form.is_valid():
        return _page(request, result, form=form, status=400)
    try:
        fixes.result_fix_apply(
            result=result, reason=form.cleaned_data["reason"], override=form.cleaned_data["override"], by=request.user
        )
    except DomainError as exc:
        if isinstance(exc, ForbiddenError):
            portal.deny(request, "compliance.result.fix", result.workload)
        form.add_error(exc.field if exc.field in ("reason", "override") else None, exc.message)
        return _page(request, result, form=form, status=exc.status)
    messages.success(request, "Fix applied: the workload is re-evaluated as soon as the watcher sees the change.")
    return redirect("compliance:result", pk=result.pk)
