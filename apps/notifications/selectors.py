"""Reads of notifications, restricted to the viewer: events, messages and deliveries where the viewer may read
their scope; channels and rules to global configurers; subscriptions to their owner."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from apps.core.access import Action, restrict
from apps.notifications.models import Channel, Delivery, DeliveryStatus, Event, Message, Rule, Subscription


def channels(viewer: Any) -> QuerySet[Channel]:
    return restrict(viewer, Action.CONFIGURE, Channel.objects.all()).order_by("name")


def rules(viewer: Any) -> QuerySet[Rule]:
    return restrict(viewer, Action.CONFIGURE, Rule.objects.all()).prefetch_related("channels").order_by("name")


def subscriptions(viewer: Any) -> QuerySet[Subscription]:
    """The viewer's own subscriptions (an admin manages others' through the admin site)."""
    if not getattr(viewer, "is_authenticated", False):
        return Subscription.objects.none()
    return Subscription.objects.filter(user_id=viewer.pk).order_by("id")


def deliveries(viewer: Any) -> QuerySet[Delivery]:
    return restrict(viewer, Action.READ, Delivery.objects.all()).select_related("channel").order_by("-id")


def events(viewer: Any, *, with_deliveries: bool = False) -> QuerySet[Event]:
    """Events the viewer may read, each with its messages counting their deliveries by status (one prefetch
    query); ``with_deliveries`` also fetches the deliveries themselves (one event's page)."""
    messages = restrict(viewer, Action.READ, Message.objects.all()).order_by("id")
    messages = messages.annotate(
        **{f"deliveries_{s}": Count("deliveries", filter=Q(deliveries__status=s)) for s in DeliveryStatus.values}
    )
    if with_deliveries:
        messages = messages.prefetch_related(Prefetch("deliveries", deliveries(viewer).order_by("id")))
    return (
        restrict(viewer, Action.READ, Event.objects.all())
        .prefetch_related(Prefetch("messages", queryset=messages))
        .order_by("-at", "-id")
    )


def dead_letters(viewer: Any) -> QuerySet[Delivery]:
    return deliveries(viewer).filter(status=DeliveryStatus.DEAD).select_related("message")
