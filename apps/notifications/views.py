"""Portal pages of notifications: the event log (what was sent for each event) with the dead letters, the
channels (write-only secrets, a "send test" button), the rules, and the viewer's own subscriptions.

Views are thin: selectors read (restricted to the viewer), services write (checked, audited), forms check shapes.
Channels and rules are global configuration: others see an explanation and no form; a refused write is a 403
recorded as denied.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core import portal
from apps.core.access import GLOBAL, Action, can_at
from apps.core.errors import DomainError, ForbiddenError
from apps.notifications import selectors
from apps.notifications.forms import ChannelForm, ConfirmForm, EventFilterForm, RuleForm, SubscriptionForm
from apps.notifications.models import Channel, Rule, Subscription
from apps.notifications.services import channels as channel_services
from apps.notifications.services import rules as rule_services

EVENTS_PAGE = 50
DEAD_SHOWN = 20


def _configurer(user: Any) -> bool:
    return can_at(user, Action.CONFIGURE, GLOBAL)


def _form_errors(form: Form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


@login_required
@require_GET
def event_log(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    rows = selectors.events(request.user, with_deliveries=True)
    if form.is_valid():
        if form.cleaned_data["q"]:
            q = form.cleaned_data["q"]
            rows = rows.filter(Q(subject__icontains=q) | Q(kind__icontains=q) | Q(text__icontains=q))
        if form.cleaned_data["severity"]:
            rows = rows.filter(severity=form.cleaned_data["severity"])
    before = request.GET.get("before", "")
    if before.isdigit():
        rows = rows.filter(pk__lt=int(before))
    page = list(rows.order_by("-id")[: EVENTS_PAGE + 1])
    context = {
        "form": form,
        "events": page[:EVENTS_PAGE],
        "older": page[EVENTS_PAGE - 1].pk if len(page) > EVENTS_PAGE else None,
        "dead": list(selectors.dead_letters(request.user)[:DEAD_SHOWN]),
    }
    return render(request, "notifications/events.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def channel_list(request: HttpRequest) -> HttpResponse:
    form = ChannelForm(request.POST or None)
    if request.method == "POST":
        if not _configurer(request.user):
            portal.deny(request, "notifications.channel.create", None)
        if form.is_valid():
            values = dict(form.cleaned_data)
            secret = values.pop("secret") or None
            try:
                channel = channel_services.channel_create(by=request.user, secret=secret, **values)
            except DomainError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"Channel {channel.name} created.")
                return redirect("notifications:channels")
    context = {"form": form, "channels": selectors.channels(request.user), "may_configure": _configurer(request.user)}
    return render(request, "notifications/channels.html", context, status=400 if form.errors else 200)


def _channel(request: HttpRequest, pk: int) -> Channel:
    found = selectors.channels(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404("no such channel")
    return found


@login_required
@require_POST
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk)
    answer = channel_services.channel_test(channel=channel, by=request.user)
    said = f"HTTP {answer.status_code}" if answer.status_code else ""
    if answer.ok:
        messages.success(request, f"Test sent through {channel.name}. {said}".strip())
    else:
        messages.error(request, f"The test through {channel.name} failed: {answer.reason or said}")
    return redirect("notifications:channels")


@login_required
@require_POST
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    channel = _channel(request, pk)
    form = ConfirmForm(request.POST)
    confirm = form.cleaned_data["confirm"] if form.is_valid() else ""
    try:
        channel_services.channel_delete(channel=channel, confirm=confirm, by=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Channel {channel.name} deleted.")
    return redirect("notifications:channels")


@login_required
@require_http_methods(["GET", "POST"])
def rule_list(request: HttpRequest) -> HttpResponse:
    channels = selectors.channels(request.user)
    form = RuleForm(request.POST or None, channels=channels)
    if request.method == "POST":
        if not _configurer(request.user):
            portal.deny(request, "notifications.rule.create", None)
        if form.is_valid():
            values = dict(form.cleaned_data)
            chosen = [c.pk for c in values.pop("channels")]
            try:
                rule = rule_services.rule_save(by=request.user, channels=chosen, **values)
            except DomainError as exc:
                _form_errors(form, exc)
            else:
                messages.success(request, f"Rule {rule.name} created.")
                return redirect("notifications:rules")
    context = {"form": form, "rules": selectors.rules(request.user), "may_configure": _configurer(request.user)}
    return render(request, "notifications/rules.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule: Rule | None = selectors.rules(request.user).filter(pk=pk).first()
    if rule is None:
        raise Http404("no such rule")
    rule_services.rule_delete(rule=rule, by=request.user)
    messages.success(request, f"Rule {rule.name} deleted.")
    return redirect("notifications:rules")


@login_required
@require_http_methods(["GET", "POST"])
def subscription_list(request: HttpRequest) -> HttpResponse:
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            rule_services.subscription_create(by=request.user, **form.cleaned_data)
        except ForbiddenError as exc:
            form.add_error("scope_kind", exc.message)
        except DomainError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Subscribed.")
            return redirect("notifications:subscriptions")
    context = {"form": form, "subscriptions": selectors.subscriptions(request.user)}
    return render(request, "notifications/subscriptions.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def subscription_delete(request: HttpRequest, pk: int) -> HttpResponse:
    found: Subscription | None = selectors.subscriptions(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404("no such subscription")
    rule_services.subscription_delete(subscription=found, by=request.user)
    messages.success(request, "Unsubscribed.")
    return redirect("notifications:subscriptions")
