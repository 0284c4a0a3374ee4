"""Settings pages: your rights, your tokens, role bindings, users and teams — each restricted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from apps.core.access import GLOBAL, Action, Role, Scope, ScopeKind, can_at, grants, is_platform_superuser, restrict
from apps.core.errors import DomainError
from apps.users.bindings import binding_create, binding_delete
from apps.users.models import ApiToken, RoleBinding, Team, User
from apps.users.tokens import token_create, token_revoke


def rights_summary(user: Any) -> list[str]:
    from apps.core.context_processors import my_rights

    return my_rights(user)


@login_required
def account(request: HttpRequest) -> HttpResponse:
    return render(request, "users/account.html", {"rights": rights_summary(request.user), "section": "account"})


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    days = forms.IntegerField(min_value=1, max_value=366, initial=90, label="Valid for (days)")


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    form = TokenForm(request.POST or None)
    secret = ""
    if request.method == "POST" and form.is_valid():
        try:
            _, secret = token_create(
                owner=user,
                name=form.cleaned_data["name"],
                by=user,
                expires_at=timezone.now() + timedelta(days=form.cleaned_data["days"]),
            )
            form = TokenForm()
        except DomainError as exc:
            form.add_error(None, f"{exc.field}: {exc.message}")
    mine = ApiToken.objects.filter(user=user).order_by("-id")
    return render(
        request,
        "users/tokens.html",
        {"form": form, "secret": secret, "tokens": mine, "section": "tokens", "rights": rights_summary(user)},
    )


@login_required
@require_http_methods(["POST"])
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)  # someone else's token is simply not found
    token_revoke(token=token, by=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Token {token.name} ({token.prefix}…) revoked.")
    return redirect("users:tokens")


class BindingForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    user = forms.CharField(required=False, max_length=150, help_text="user name, or leave empty and give a team")
    team = forms.CharField(required=False, max_length=100)
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, initial=ScopeKind.GLOBAL)
    scope_cluster = forms.CharField(required=False, max_length=100, label="Cluster")
    scope_namespace = forms.CharField(required=False, max_length=100, label="Namespace")
    scope_application = forms.CharField(required=False, max_length=150, label="Application")
    expires_at = forms.DateTimeField(required=False, help_text="optional, e.g. 2027-01-31 18:00")


def _may_manage_somewhere(user: Any) -> bool:
    return is_platform_superuser(user) or any(Role(role) == Role.ADMIN for role, _ in grants(user))


@login_required
@require_http_methods(["GET", "POST"])
def bindings(request: HttpRequest) -> HttpResponse:
    form = BindingForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            subject_user = User.objects.filter(username=data["user"]).first() if data["user"] else None
            subject_team = Team.objects.filter(name=data["team"]).first() if data["team"] else None
            if data["user"] and subject_user is None:
                raise DomainError(f"no user {data['user']!r}", field="user")
            if data["team"] and subject_team is None:
                raise DomainError(f"no team {data['team']!r}", field="team")
            scope = Scope(data["scope_kind"], data["scope_cluster"], data["scope_namespace"], data["scope_application"])
            binding_create(
                by=request.user,  # type: ignore[arg-type]
                role=data["role"],
                user=subject_user,
                team=subject_team,
                scope=scope,
                expires_at=data["expires_at"],
            )
            messages.success(request, "Role binding created.")
            return redirect("users:bindings")
        except DomainError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
    visible = restrict(request.user, Action.READ, RoleBinding.objects.select_related("user", "team")).order_by("-id")
    return render(
        request,
        "users/bindings.html",
        {
            "form": form,
            "bindings": visible[:500],
            "may_manage": _may_manage_somewhere(request.user),
            "section": "bindings",
            "rights": rights_summary(request.user),
        },
    )


@login_required
@require_http_methods(["POST"])
def binding_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    binding = get_object_or_404(restrict(request.user, Action.READ, RoleBinding.objects.all()), pk=pk)
    try:
        binding_delete(by=request.user, binding=binding)  # type: ignore[arg-type]
        messages.success(request, f"Removed {binding}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("users:bindings")


@login_required
def people(request: HttpRequest) -> HttpResponse:
    users = restrict(request.user, Action.READ, User.objects.order_by("username"))[:500]
    teams = restrict(request.user, Action.READ, Team.objects.order_by("name")).prefetch_related("members")[:200]
    return render(
        request,
        "users/people.html",
        {
            "users": users,
            "teams": teams,
            "section": "people",
            "rights": rights_summary(request.user),
            "may_configure": can_at(request.user, Action.CONFIGURE, GLOBAL),
        },
    )
