"""Portal pages of compliance policies: the library (built-ins with their documented checks, custom CEL ones), a
policy's page (checks, bindings, enable or disable, dry run, the CEL editor with "test against a workload", delete
with the key typed) and the binding form (scope, mode, check, parameters).

Enabling a policy and switching a binding to ``enforce`` go through a confirmation step that shows the dry run
first: every workload the viewer may read that would fail or be denied. Views are thin: forms check shapes, the
policy selectors read, the services check rights and rules and write. Refusals are 403 (recorded as denied).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.clusters.models import Cluster
from apps.compliance import dryrun, policy_selectors
from apps.compliance.forms import (
    BindingForm,
    ConfirmForm,
    PolicyDeleteForm,
    PolicyForm,
    ReasonForm,
    binding_initial,
    policy_initial,
)
from apps.compliance.models import Binding, Mode, Policy, PolicyKind
from apps.compliance.services import policies as services
from apps.core import portal
from apps.core.access import GLOBAL, Action, ScopeKind, can_at, is_platform_superuser, scopes_for
from apps.core.errors import DomainError, ForbiddenError

TEST_WORKLOADS = 200  # offered in the editor's picker (the API tests against any readable workload by id)
BINDING_FIELDS = ("check_id", "scope_kind", "scope_cluster", "scope_namespace", "scope_application", "mode", "params")


def _policy(request: HttpRequest, pk: int) -> Policy:
    found = policy_selectors.policy(request.user, pk)
    if found is None:
        raise Http404("no such policy")
    return found


def _binding(request: HttpRequest, pk: int) -> Binding:
    found = policy_selectors.binding(request.user, pk)
    if found is None:
        raise Http404("no such binding")
    return found


def _may_configure_policies(user: Any) -> bool:
    return can_at(user, Action.CONFIGURE, GLOBAL)


def _may_bind(user: Any) -> bool:
    """Rule: the binding form is offered to whoever may configure somewhere (the service checks the scope)."""
    return is_platform_superuser(user) or bool(scopes_for(user, Action.CONFIGURE))


def _refused(request: HttpRequest, exc: DomainError, what: str, target: Any) -> None:
    if isinstance(exc, ForbiddenError):
        portal.deny(request, what, target)


# --- the library ----------------------------------------------------------------------------------------------------


@login_required
@require_GET
def policy_list(request: HttpRequest) -> HttpResponse:
    kind = request.GET.get("kind", "")
    rows = policy_selectors.policies(request.user, kind=kind if kind in PolicyKind.values else "")
    context = {
        "library": [(p, policy_selectors.policy_checks(p)) for p in rows],
        "kind": kind,
        "may_create": _may_configure_policies(request.user),
    }
    return render(request, "compliance/policies.html", context)


# --- one policy -----------------------------------------------------------------------------------------------------


def _editor(request: HttpRequest, policy: Policy | None, data: Any = None) -> PolicyForm:
    workloads = list(policy_selectors.workloads(request.user)[:TEST_WORKLOADS])
    initial = policy_initial(policy) if policy is not None else {}
    return PolicyForm(data, initial=initial, workloads=workloads, policy=policy)


def _page(request: HttpRequest, policy: Policy | None, *, status: int = 200, **extra: Any) -> HttpResponse:
    user = request.user
    editable = policy is None or policy.kind == PolicyKind.CEL
    context: dict[str, Any] = {
        "policy": policy,
        "form": extra.pop("form", None) or (_editor(request, policy) if editable else None),
        "delete_form": extra.pop("delete_form", None) or PolicyDeleteForm(),
        "may_configure": _may_configure_policies(user),
        "may_bind": _may_bind(user),
        **extra,
    }
    if policy is not None:
        context.update(
            checks=policy_selectors.policy_checks(policy),
            bindings=policy_selectors.bindings(user, policy=policy.pk),
        )
    return render(request, "compliance/policy.html", context, status=status)


def _test(request: HttpRequest, policy: Policy | None, form: PolicyForm) -> HttpResponse:
    """Judge the unsaved editor's policy against the chosen workload; nothing is saved."""
    pk = form.cleaned_data.get("test_workload")
    workload = policy_selectors.workloads(request.user).filter(pk=pk).first() if pk else None
    if workload is None:
        form.add_error("test_workload", "choose a workload you may read to test against")
        return _page(request, policy, form=form, status=400)
    values = form.values()
    try:
        answer = dryrun.policy_test(
            validations=values["validations"],
            variables=values["variables"],
            match=values["match"],
            params=form.cleaned_data.get("test_params") or None,
            severity=values["severity"],
            key=policy.key if policy is not None else form.cleaned_data.get("key") or "custom",
            workload=workload,
            by=request.user,
        )
    except DomainError as exc:
        form.place(exc)
        return _page(request, policy, form=form, status=400)
    return _page(request, policy, form=form, test=answer, tested=workload)


def _save(request: HttpRequest, policy: Policy | None) -> HttpResponse:
    form = _editor(request, policy, request.POST)
    if not form.is_valid():
        return _page(request, policy, form=form, status=400)
    if request.POST.get("action") == "test":
        return _test(request, policy, form)
    what = "compliance.policy.create" if policy is None else "compliance.policy.update"
    try:
        if policy is None:
            saved = services.policy_create(by=request.user, **form.values())
        else:
            saved = services.policy_update(policy=policy, by=request.user, **form.values())
    except DomainError as exc:
        _refused(request, exc, what, policy)
        form.place(exc)
        return _page(request, policy, form=form, status=exc.status)
    messages.success(request, f"Policy {saved.key} saved (version {saved.version}).")
    return redirect("compliance:policy", pk=saved.pk)


@login_required
@require_http_methods(["GET", "POST"])
def policy_new(request: HttpRequest) -> HttpResponse:
    if not _may_configure_policies(request.user):
        portal.deny(request, "compliance.policy.create", None)
    if request.method == "GET":
        return _page(request, None)
    return _save(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def policy_detail(request: HttpRequest, pk: int) -> HttpResponse:
    policy = _policy(request, pk)
    if request.method == "GET":
        return _page(request, policy)
    if policy.kind != PolicyKind.CEL:
        messages.error(request, "A built-in policy's checks cannot be edited: enable, disable or bind it.")
        return _page(request, policy, status=409)
    if request.POST.get("action") != "test" and not _may_configure_policies(request.user):
        portal.deny(request, "compliance.policy.update", policy)
    return _save(request, policy)


@login_required
@require_POST
def policy_dry_run(request: HttpRequest, pk: int) -> HttpResponse:
    policy = _policy(request, pk)
    run = dryrun.policy_dry_run(viewer=request.user, policy=policy)
    return _page(request, policy, dry=run, dry_title="Dry run: what this policy's enabled bindings would do")


@login_required
@require_POST
def policy_enable(request: HttpRequest, pk: int, enabled: bool) -> HttpResponse:
    """Disable at once; enable only after the dry run was shown and confirmed."""
    policy = _policy(request, pk)
    what = "compliance.policy.enable" if enabled else "compliance.policy.disable"
    if not _may_configure_policies(request.user):
        portal.deny(request, what, policy)
    form = ReasonForm(request.POST)
    data = form.cleaned_data if form.is_valid() else {}
    if enabled and not policy.enabled and not data.get("confirmed"):
        run = dryrun.policy_dry_run(viewer=request.user, policy=policy)
        title = "Before enabling: the workloads its bindings would fail or deny"
        return _page(request, policy, dry=run, dry_title=title, confirm_enable=True)
    services.policy_set_enabled(policy=policy, enabled=enabled, by=request.user, reason=data.get("reason", ""))
    messages.success(request, f"Policy {policy.key} {'enabled' if enabled else 'disabled'}.")
    return redirect("compliance:policy", pk=policy.pk)


@login_required
@require_POST
def policy_delete(request: HttpRequest, pk: int) -> HttpResponse:
    policy = _policy(request, pk)
    if not _may_configure_policies(request.user):
        portal.deny(request, "compliance.policy.delete", policy)
    form = PolicyDeleteForm(request.POST)
    confirm = form.cleaned_data["confirm"] if form.is_valid() else ""
    try:
        services.policy_delete(policy=policy, confirm=confirm, by=request.user)
    except DomainError as exc:
        _refused(request, exc, "compliance.policy.delete", policy)
        form.add_error("confirm" if exc.field == "confirm" else None, exc.message)
        return _page(request, policy, delete_form=form, status=exc.status)
    messages.success(request, f"Policy {policy.key} deleted with its bindings and exceptions.")
    return redirect("compliance:policies")


# --- bindings -------------------------------------------------------------------------------------------------------


def _clusters(user: Any) -> Any:
    """The clusters a binding form offers: every one the viewer holds a grant in (a namespace admin's cluster too,
    which access control alone would not show them)."""
    scopes = scopes_for(user, Action.READ)
    if is_platform_superuser(user) or any(s.kind == ScopeKind.GLOBAL for s in scopes):
        return Cluster.objects.order_by("name")
    return Cluster.objects.filter(pk__in={int(s.cluster) for s in scopes if s.cluster.isdigit()}).order_by("name")


def _binding_form(request: HttpRequest, policy: Policy, binding: Binding | None, data: Any = None) -> BindingForm:
    initial = binding_initial(binding) if binding is not None else {}
    checks = services.check_ids(policy)
    return BindingForm(data, initial=initial, checks=checks, clusters=_clusters(request.user))


def _binding_page(
    request: HttpRequest, policy: Policy, binding: Binding | None, form: BindingForm, *, status: int = 200, **extra: Any
) -> HttpResponse:
    context = {
        "policy": policy,
        "binding": binding,
        "form": form,
        "confirm_form": ConfirmForm(),
        "may_edit": _may_bind(request.user),
        **extra,
    }
    return render(request, "compliance/binding.html", context, status=status)


def _switches_to_enforce(values: dict[str, Any], binding: Binding | None) -> bool:
    """Rule: a binding that starts to deny (new in enforce, or switched to it, or re-enabled in it) is confirmed
    after its dry run."""
    if values["mode"] != Mode.ENFORCE or not values["enabled"]:
        return False
    return binding is None or binding.mode != Mode.ENFORCE or not binding.enabled


def _save_binding(request: HttpRequest, policy: Policy, binding: Binding | None) -> HttpResponse:
    form = _binding_form(request, policy, binding, request.POST)
    if not form.is_valid():
        return _binding_page(request, policy, binding, form, status=400)
    values = form.values()
    what = "compliance.binding.create" if binding is None else "compliance.binding.update"
    try:
        if _switches_to_enforce(values, binding) and not form.cleaned_data.get("confirmed"):
            run = dryrun.binding_dry_run(viewer=request.user, policy=policy, **values)
            kept = (*BINDING_FIELDS, "enabled", "warn_in_maintenance")
            keep = [(name, request.POST.get(name, "")) for name in kept if name in request.POST]
            return _binding_page(request, policy, binding, form, dry=run, confirm_values=keep)
        if binding is None:
            saved = services.binding_create(policy=policy, by=request.user, **values)
        else:
            saved = services.binding_update(binding=binding, by=request.user, **values)
    except DomainError as exc:
        _refused(request, exc, what, binding)
        form.place(exc)
        return _binding_page(request, policy, binding, form, status=exc.status)
    messages.success(request, f"Binding of {policy.key} at {saved.scope().label()} saved ({saved.mode}).")
    return redirect("compliance:policy", pk=policy.pk)


@login_required
@require_http_methods(["GET", "POST"])
def binding_new(request: HttpRequest, pk: int) -> HttpResponse:
    policy = _policy(request, pk)
    if not _may_bind(request.user):
        portal.deny(request, "compliance.binding.create", policy)
    if request.method == "GET":
        return _binding_page(request, policy, None, _binding_form(request, policy, None))
    return _save_binding(request, policy, None)


@login_required
@require_http_methods(["GET", "POST"])
def binding_detail(request: HttpRequest, pk: int) -> HttpResponse:
    binding = _binding(request, pk)
    policy = binding.policy
    if request.method == "GET":
        return _binding_page(request, policy, binding, _binding_form(request, policy, binding))
    return _save_binding(request, policy, binding)


@login_required
@require_POST
def binding_delete(request: HttpRequest, pk: int) -> HttpResponse:
    binding = _binding(request, pk)
    policy = binding.policy
    confirm = ConfirmForm(request.POST)
    if not confirm.is_valid():
        form = _binding_form(request, policy, binding)
        return _binding_page(request, policy, binding, form, confirm_form=confirm, status=400)
    try:
        services.binding_delete(binding=binding, by=request.user)
    except DomainError as exc:
        _refused(request, exc, "compliance.binding.delete", binding)
        raise
    messages.success(request, f"Binding of {policy.key} at {binding.scope().label()} removed.")
    return redirect("compliance:policy", pk=policy.pk)
