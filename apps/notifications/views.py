"""Portal pages of notifications: the event log (filtered, paginated, live) and each event's page (its messages and
deliveries), the delivery log (status, attempts, the channel's answer, dead letters, retry), the channels and rules
(create, edit, delete after a confirmation page; secrets write-only) and the viewer's own subscriptions.

Views are thin: selectors read (restricted to the viewer), services write (checked, audited), forms check shapes.
Channels and rules are global configuration: others get 404 for one of them (they may not know it exists) and 403,
recorded as denied, for a create.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core import portal
from apps.core.access import GLOBAL, Action, can_at, is_platform_superuser, scopes_for
from apps.core.errors import DomainError, ForbiddenError
from apps.core.selectors import contains_any
from apps.notifications import events as topics
from apps.notifications import selectors
from apps.notifications.forms import (
    ChannelForm,
    ConfirmForm,
    DeleteForm,
    DeliveryFilterForm,
    EventFilterForm,
    RuleForm,
    SubscriptionEditForm,
    SubscriptionForm,
    channel_initial,
    rule_initial,
    subscription_initial,
)
from apps.notifications.models import Channel, ChannelKind, Delivery, DeliveryStatus, Event, Message, Rule, Subscription
from apps.notifications.services import channels as channel_services
from apps.notifications.services import deliveries as delivery_services
from apps.notifications.services import rules as rule_services
from apps.notifications.services import subscriptions as subscription_services

EVENTS_PAGE = 50
DELIVERIES_PAGE = 50
DEAD_SHOWN = 20
EventMessages = Message.events.through


def _posted(request: HttpRequest) -> Any:
    """A POST's data (even empty: a form posted empty is bound and invalid), None for a GET."""
    return request.POST if request.method == "POST" else None


def _configurer(user: Any) -> bool:
    return can_at(user, Action.CONFIGURE, GLOBAL)


def _may_act_somewhere(user: Any) -> bool:
    """Rule: the retry button is offered to whoever may act somewhere (the service checks the delivery's scope)."""
    return is_platform_superuser(user) or bool(scopes_for(user, Action.ACT))


def _form_errors(form: Form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def _refused(request: HttpRequest, exc: DomainError, what: str, target: Any) -> None:
    """A service's refusal of the caller becomes the portal's audited 403."""
    if isinstance(exc, ForbiddenError):
        portal.deny(request, what, target)


# --- the event log -----------------------------------------------------------------------------------------------


def _event_state(rows: QuerySet[Event], state: str) -> QuerySet[Event]:
    links = EventMessages.objects.filter(event_id=OuterRef("pk"))
    if state == "unrouted":
        return rows.filter(~Exists(links))
    if state == "dead":
        return rows.filter(Exists(links.filter(message__deliveries__status=DeliveryStatus.DEAD)))
    return rows.filter(Exists(links.filter(message__state=state)))


def _events_context(request: HttpRequest) -> dict[str, Any]:
    form = EventFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    rows = selectors.events(request.user, with_deliveries=True)
    if filters.get("q"):
        rows = rows.filter(contains_any(("subject", "kind", "text"), filters["q"]))
    if filters.get("kind"):
        rows = rows.filter(kind__startswith=filters["kind"])
    if filters.get("severity"):
        rows = rows.filter(severity=filters["severity"])
    if filters.get("state"):
        rows = _event_state(rows, filters["state"])
    page = portal.paginate(rows.order_by("-at", "-id"), filters.get("page"), EVENTS_PAGE)
    dead = list(selectors.dead_letters(request.user)[:DEAD_SHOWN])
    return {"form": form, "filters": filters, "page": page, "query": portal.query_string(filters), "dead": dead}


@login_required
@require_GET
def event_log(request: HttpRequest) -> HttpResponse:
    context = _events_context(request)
    context["live_topics"] = topics.LOG
    return render(request, "notifications/events.html", context)


events_table = portal.table_view("notifications/_events_table.html", _events_context)


def _event(request: HttpRequest, pk: int) -> Event:
    found = selectors.events(request.user, with_deliveries=True).filter(pk=pk).first()
    if found is None:
        raise Http404("no such event")
    return found


def _event_context(request: HttpRequest, event: Event) -> dict[str, Any]:
    shown = list(event.messages.all())
    rule_ids = {m.rule_id for m in shown if m.rule_id}
    rules = {r.pk: r for r in selectors.rules(request.user).filter(pk__in=rule_ids)} if rule_ids else {}
    for message in shown:
        message.shown_rule = rules.get(message.rule_id or 0)  # type: ignore[attr-defined]
    return {
        "event": event,
        "messages_shown": shown,
        "may_configure": _configurer(request.user),
        "may_retry": _may_act_somewhere(request.user),
    }


@login_required
@require_GET
def event_detail(request: HttpRequest, pk: int) -> HttpResponse:
    event = _event(request, pk)
    context = _event_context(request, event)
    context["live_topics"] = topics.event(event.pk)
    return render(request, "notifications/event.html", context)


@login_required
@require_GET
def event_messages(request: HttpRequest, pk: int) -> HttpResponse:
    """One event's messages and deliveries alone (its page re-fetches them when a delivery changes)."""
    return render(request, "notifications/_event_messages.html", _event_context(request, _event(request, pk)))


# --- the delivery log --------------------------------------------------------------------------------------------


def _deliveries_context(request: HttpRequest) -> dict[str, Any]:
    form = DeliveryFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    rows = selectors.deliveries(request.user).select_related("message")
    if filters.get("status"):
        rows = rows.filter(status=filters["status"])
    if filters.get("channel"):
        rows = rows.filter(channel_id=filters["channel"])
    if filters.get("q"):
        text = filters["q"]
        rows = rows.filter(
            contains_any(("message__subject", "message__kind", "reason", "recipient"), text)
            | Q(channel__name__icontains=text)
        )
    page = portal.paginate(rows.order_by("-id"), filters.get("page"), DELIVERIES_PAGE)
    return {
        "form": form,
        "filters": filters,
        "page": page,
        "query": portal.query_string(filters),
        "may_retry": _may_act_somewhere(request.user),
        "may_configure": _configurer(request.user),
    }


@login_required
@require_GET
def delivery_list(request: HttpRequest) -> HttpResponse:
    context = _deliveries_context(request)
    channel_id = context["filters"].get("channel")
    context["channel"] = selectors.channels(request.user).filter(pk=channel_id).first() if channel_id else None
    context["live_topics"] = topics.DELIVERIES
    return render(request, "notifications/deliveries.html", context)


deliveries_table = portal.table_view("notifications/_deliveries_table.html", _deliveries_context)


@login_required
@require_POST
def delivery_retry(request: HttpRequest, pk: int) -> HttpResponse:
    found: Delivery | None = selectors.deliveries(request.user).select_related("message").filter(pk=pk).first()
    if found is None:
        raise Http404("no such delivery")
    try:
        delivery_services.delivery_retry(delivery=found, by=request.user)
    except DomainError as exc:
        _refused(request, exc, "notifications.delivery.retry", found)
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Delivery {found.pk} is queued again.")
    back = request.POST.get("next", "")
    return redirect(back if back.startswith("/notifications/") else reverse("notifications:deliveries"))


# --- channels ----------------------------------------------------------------------------------------------------


def _channel(request: HttpRequest, pk: int) -> Channel:
    found = selectors.channels(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404("no such channel")
    return found


@login_required
@require_http_methods(["GET", "POST"])
def channel_list(request: HttpRequest) -> HttpResponse:
    form = ChannelForm(_posted(request))
    if request.method == "POST":
        if not _configurer(request.user):
            portal.deny(request, "notifications.channel.create", None)
        if form.is_valid():
            created = _channel_create(request, form)
            if created is not None:
                return redirect("notifications:channel", pk=created.pk)
    context = {
        "form": form,
        "channels": selectors.channels(request.user).prefetch_related("rules"),
        "may_configure": _configurer(request.user),
        "kinds": ChannelKind.choices,
    }
    return render(request, "notifications/channels.html", context, status=400 if form.errors else 200)


def _channel_create(request: HttpRequest, form: ChannelForm) -> Channel | None:
    values, secret = form.values()
    try:
        channel = channel_services.channel_create(by=request.user, secret=secret, **values)
    except DomainError as exc:
        _refused(request, exc, "notifications.channel.create", None)
        _form_errors(form, exc)
        return None
    messages.success(request, f"Channel {channel.name} created.")
    return channel


@login_required
@require_http_methods(["GET", "POST"])
def channel_new(request: HttpRequest) -> HttpResponse:
    if not _configurer(request.user):
        portal.deny(request, "notifications.channel.create", None)
    kind = request.POST.get("kind") or request.GET.get("kind") or ChannelKind.EMAIL
    if kind not in ChannelKind.values:
        raise Http404("no such channel kind")
    form = ChannelForm(_posted(request), kind=kind, initial={"kind": kind})
    if request.method == "POST" and form.is_valid():
        created = _channel_create(request, form)
        if created is not None:
            return redirect("notifications:channel", pk=created.pk)
    context = {"form": form, "channel": None, "kind": kind, "kinds": ChannelKind.choices}
    return render(request, "notifications/channel.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def channel_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A channel's page: its edit form (the secret never shown; empty keeps it), its rules and its deliveries."""
    channel = _channel(request, pk)
    form = ChannelForm(
        _posted(request),
        initial=channel_initial(channel),
        kind=channel.kind,
        editing=True,
        has_secret=channel.has_secret,
    )
    if request.method == "POST" and form.is_valid():
        values, secret = form.values()
        try:
            channel_services.channel_update(channel=channel, by=request.user, secret=secret, **values)
        except DomainError as exc:
            _refused(request, exc, "notifications.channel.update", channel)
            _form_errors(form, exc)
            channel = _channel(request, pk)  # the service changed the instance it was given; show what is stored
        else:
            messages.success(request, f"Channel {channel.name} saved.")
            return redirect("notifications:channel", pk=channel.pk)
    counts = dict(
        selectors.deliveries(request.user).filter(channel=channel).values_list("status").annotate(n=Count("id"))
    )
    context = {
        "form": form,
        "channel": channel,
        "kind": channel.kind,
        "rules": selectors.rules(request.user).filter(channels=channel),
        "delivery_counts": [(s, label, counts.get(s, 0)) for s, label in DeliveryStatus.choices],
    }
    return render(request, "notifications/channel.html", context, status=400 if form.errors else 200)


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
    back = request.POST.get("next", "")
    return redirect(back if back.startswith("/notifications/") else reverse("notifications:channels"))


@login_required
@require_http_methods(["GET", "POST"])
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation page (type the channel's name). POST: delete when the name matches."""
    channel = _channel(request, pk)
    form = ConfirmForm(_posted(request))
    if request.method == "POST":
        confirm = form.cleaned_data["confirm"] if form.is_valid() else ""
        try:
            channel_services.channel_delete(channel=channel, confirm=confirm, by=request.user)
        except DomainError as exc:
            _refused(request, exc, "notifications.channel.delete", channel)
            form.add_error("confirm", exc.message)
        else:
            messages.success(request, f"Channel {channel.name} deleted.")
            return redirect("notifications:channels")
    context = {
        "form": form,
        "what": f"channel {channel.name}",
        "typed": channel.name,
        "consequence": "Its rules stop sending there; its deliveries are deleted with it.",
        "cancel": reverse("notifications:channel", args=[channel.pk]),
    }
    return render(request, "notifications/confirm_delete.html", context, status=400 if form.errors else 200)


# --- rules -------------------------------------------------------------------------------------------------------


def _rule(request: HttpRequest, pk: int) -> Rule:
    found: Rule | None = selectors.rules(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404("no such rule")
    return found


def _rule_save(request: HttpRequest, form: RuleForm, rule: Rule | None) -> Rule | None:
    values, chosen = form.values()
    try:
        saved = rule_services.rule_save(rule=rule, by=request.user, channels=chosen, **values)
    except DomainError as exc:
        _refused(request, exc, f"notifications.rule.{'update' if rule else 'create'}", rule)
        _form_errors(form, exc)
        return None
    messages.success(request, f"Rule {saved.name} {'saved' if rule else 'created'}.")
    return saved


@login_required
@require_http_methods(["GET", "POST"])
def rule_list(request: HttpRequest) -> HttpResponse:
    channels = selectors.channels(request.user)
    form = RuleForm(_posted(request), channels=channels)
    if request.method == "POST":
        if not _configurer(request.user):
            portal.deny(request, "notifications.rule.create", None)
        if form.is_valid() and _rule_save(request, form, None) is not None:
            return redirect("notifications:rules")
    context = {"form": form, "rules": selectors.rules(request.user), "may_configure": _configurer(request.user)}
    return render(request, "notifications/rules.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def rule_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A rule's page: its edit form and links to its channels."""
    rule = _rule(request, pk)
    form = RuleForm(_posted(request), channels=selectors.channels(request.user), initial=rule_initial(rule))
    if request.method == "POST" and form.is_valid():
        if _rule_save(request, form, rule) is not None:
            return redirect("notifications:rule", pk=rule.pk)
        rule = _rule(request, pk)  # the service changed the instance it was given; show what is stored
    context = {"form": form, "rule": rule}
    return render(request, "notifications/rule.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation page. POST: delete when the confirmation is ticked."""
    rule = _rule(request, pk)
    form = DeleteForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        try:
            rule_services.rule_delete(rule=rule, by=request.user)
        except DomainError as exc:
            _refused(request, exc, "notifications.rule.delete", rule)
            raise
        messages.success(request, f"Rule {rule.name} deleted.")
        return redirect("notifications:rules")
    context = {
        "form": form,
        "what": f"rule {rule.name}",
        "consequence": "Its open conditions and their history are deleted with it.",
        "cancel": reverse("notifications:rule", args=[rule.pk]),
    }
    return render(request, "notifications/confirm_delete.html", context, status=400 if form.errors else 200)


# --- subscriptions -----------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def subscription_list(request: HttpRequest) -> HttpResponse:
    form = SubscriptionForm(_posted(request))
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


def _subscription(request: HttpRequest, pk: int) -> Subscription:
    found: Subscription | None = selectors.subscriptions(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404("no such subscription")
    return found


@login_required
@require_http_methods(["GET", "POST"])
def subscription_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One of the viewer's subscriptions, to edit (its scope stays one they may read)."""
    found = _subscription(request, pk)
    form = SubscriptionEditForm(_posted(request), initial=subscription_initial(found))
    if request.method == "POST" and form.is_valid():
        try:
            subscription_services.subscription_update(subscription=found, by=request.user, **form.cleaned_data)
        except ForbiddenError as exc:
            form.add_error("scope_kind", exc.message)
        except DomainError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, "Subscription saved.")
            return redirect("notifications:subscriptions")
        found = _subscription(request, pk)  # the service changed the instance it was given; show what is stored
    context = {"form": form, "subscription": found}
    return render(request, "notifications/subscription.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def subscription_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the confirmation page. POST: unsubscribe when the confirmation is ticked."""
    found = _subscription(request, pk)
    form = DeleteForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        rule_services.subscription_delete(subscription=found, by=request.user)
        messages.success(request, "Unsubscribed.")
        return redirect("notifications:subscriptions")
    context = {
        "form": form,
        "what": f"your subscription to {', '.join(found.kinds)} ({found.scope.label()})",
        "consequence": f"{found.email} stops receiving these e-mails.",
        "cancel": reverse("notifications:subscriptions"),
    }
    return render(request, "notifications/confirm_delete.html", context, status=400 if form.errors else 200)
