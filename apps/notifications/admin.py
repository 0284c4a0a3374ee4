"""Notifications in the admin: read-only (channels, rules and subscriptions change through the portal and the API,
whose services check, validate and audit). A channel's secret is never shown (only whether one is set)."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.admin_mixins import ReadOnlyAdmin
from apps.notifications.models import Channel, Delivery, Event, Message, Rule, Subscription


@admin.register(Channel)
class ChannelAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "target", "has_secret", "max_per_minute", "enabled")
    fields = ("name", "kind", "target", "max_per_minute", "enabled", "created_at", "updated_at")
    search_fields = ("name", "target")


@admin.register(Rule)
class RuleAdmin(ReadOnlyAdmin):
    list_display = ("name", "kinds", "min_severity", "scope_kind", "scope_cluster", "enabled")
    search_fields = ("name",)


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    list_display = ("user", "kinds", "min_severity", "scope_kind", "scope_cluster", "email", "enabled")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("at", "kind", "severity", "subject", "scope_kind", "scope_cluster", "maintenance")
    list_filter = ("severity", "kind")
    search_fields = ("subject", "text", "dedup_key")


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("opened_at", "kind", "subject", "count", "state", "muted", "rule", "subscription")
    list_filter = ("state",)
    exclude = ("events",)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "message", "channel", "recipient", "kind", "status", "attempts", "status_code")
    list_filter = ("status", "kind")
