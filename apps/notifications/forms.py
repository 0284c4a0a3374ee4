"""Forms of the notifications pages: shapes only (the services check the rules and name the field).

A channel's form is shaped by its kind: an e-mail channel has addresses, a webhook a URL and an optional signing
key, Slack and Teams an incoming webhook URL (the secret). Secrets are write-only: the field never renders a value,
and on an edit form an empty one keeps what is stored.
"""

from __future__ import annotations

from typing import Any

from django import forms

from apps.core.access import ScopeKind
from apps.notifications.models import (
    SEVERITY_CHOICES,
    Channel,
    ChannelKind,
    DeliveryStatus,
    MessageState,
    Rule,
    Subscription,
)

# What each kind's form asks for: (target label, secret label) — None when the kind has no such field.
KIND_FIELDS: dict[str, tuple[str | None, str | None]] = {  # keyed by ChannelKind values
    ChannelKind.EMAIL: ("Addresses", None),
    ChannelKind.WEBHOOK: ("URL", "Signing key (HMAC-SHA256, optional)"),
    ChannelKind.SLACK: (None, "Incoming webhook URL"),
    ChannelKind.TEAMS: (None, "Incoming webhook URL"),
}
KIND_HELP: dict[str, str] = {
    ChannelKind.EMAIL: "Comma-separated e-mail addresses.",
    ChannelKind.WEBHOOK: "Where ICC POSTs signed JSON; it must pass the outbound address policy.",
    ChannelKind.SLACK: "The whole URL is the secret (its path is the token); only its host is shown afterwards.",
    ChannelKind.TEAMS: "The whole URL is the secret (its path is the token); only its host is shown afterwards.",
}


class ChannelForm(forms.Form):
    """Without ``kind``: every field (the list page's form). With ``kind``: that kind's fields only, the kind fixed.
    ``editing``: an empty secret keeps the stored one (a webhook's can be removed with ``remove_secret``)."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    target = forms.CharField(
        required=False, help_text="E-mail: addresses, comma-separated. Webhook: its URL. Slack/Teams: leave empty."
    )
    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Slack/Teams: the incoming webhook URL. Webhook: the HMAC signing key. Never shown again.",
    )
    remove_secret = forms.BooleanField(required=False, label="Remove the stored signing key")
    max_per_minute = forms.IntegerField(min_value=1, max_value=10000, initial=30, label="At most per minute")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, kind: str | None = None, editing: bool = False, has_secret: bool = False, **kw: Any):
        super().__init__(*args, **kw)
        self.editing = editing
        self.fixed_kind = kind if kind in ChannelKind.values else None
        if not (editing and has_secret and self.fixed_kind == ChannelKind.WEBHOOK):
            del self.fields["remove_secret"]
        if not editing:
            del self.fields["enabled"]
        if self.fixed_kind is None:
            return
        self.fields["kind"].widget = forms.HiddenInput()
        self.fields["kind"].initial = self.fixed_kind
        target_label, secret_label = KIND_FIELDS[self.fixed_kind]
        if target_label is None:
            del self.fields["target"]
        else:
            self.fields["target"].label = target_label
            self.fields["target"].required = True
            self.fields["target"].help_text = KIND_HELP[self.fixed_kind]
        if secret_label is None:
            del self.fields["secret"]
        else:
            secret = self.fields["secret"]
            secret.label = secret_label
            required = self.fixed_kind in (ChannelKind.SLACK, ChannelKind.TEAMS) and not editing
            secret.required = required
            kept = " Leave empty to keep the stored one." if editing and has_secret else ""
            about = KIND_HELP[self.fixed_kind] if target_label is None else ""
            secret.help_text = f"{about} Never shown again.{kept}".strip()

    def clean_kind(self) -> str:
        kind = str(self.cleaned_data["kind"])
        if self.fixed_kind is not None and kind != self.fixed_kind:
            raise forms.ValidationError("a channel's kind does not change: make a new channel")
        return kind

    def values(self) -> tuple[dict[str, Any], str | None]:
        """The service's keyword arguments and the secret: None keeps (or, creating, sets none), "" removes."""
        data = dict(self.cleaned_data)
        secret = data.pop("secret", "") or None
        if data.pop("remove_secret", False):
            secret = ""
        if data.get("kind") in (ChannelKind.SLACK, ChannelKind.TEAMS):
            data.pop("target", None)  # derived from the secret URL by the service
        return data, secret

    def field_for(self, service_field: str | None) -> str | None:
        """The form field a service error names (None: the form as a whole)."""
        return service_field if service_field in self.fields else None


def channel_initial(channel: Channel) -> dict[str, Any]:
    """What an edit form starts with: never the secret."""
    initial = {"name": channel.name, "kind": channel.kind, "max_per_minute": channel.max_per_minute}
    initial["enabled"] = channel.enabled
    if channel.kind in (ChannelKind.EMAIL, ChannelKind.WEBHOOK):
        initial["target"] = channel.target
    return initial


class KindsField(forms.CharField):
    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list) else value


class _ScopedForm(forms.Form):
    kinds = KindsField(help_text="Event kinds or globs, comma-separated: clusters.*, cron.run_failed, *")
    min_severity = forms.ChoiceField(choices=SEVERITY_CHOICES, initial="warning", label="Minimum severity")
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, initial=ScopeKind.GLOBAL, label="Scope")
    scope_cluster = forms.CharField(required=False, max_length=64, label="Cluster id")
    scope_namespace = forms.CharField(required=False, max_length=253, label="Namespace")
    scope_application = forms.CharField(required=False, max_length=253, label="Application")
    group_window_seconds = forms.IntegerField(
        min_value=0, max_value=86400, initial=30, label="Group window (s)", help_text="Events of one key within it"
    )


class RuleForm(_ScopedForm):
    name = forms.CharField(max_length=100)
    channels = forms.ModelMultipleChoiceField(queryset=Channel.objects.none(), required=False)
    repeat_interval_seconds = forms.IntegerField(
        min_value=0, max_value=86400, initial=0, label="Repeat interval (s)", help_text="0: never repeat"
    )
    notify_resolved = forms.BooleanField(required=False, initial=True, label="Notify when resolved")
    enabled = forms.BooleanField(required=False, initial=True)

    field_order = ["name", "kinds", "min_severity", "scope_kind", "scope_cluster", "scope_namespace"]

    def __init__(self, *args: Any, channels: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if channels is not None:
            self.fields["channels"].queryset = channels  # type: ignore[attr-defined]
        self.fields[
            "channels"
        ].help_text = "Where this rule's messages go; each channel's own limit per minute applies to its deliveries."

    def values(self) -> tuple[dict[str, Any], list[int]]:
        data = dict(self.cleaned_data)
        return data, [c.pk for c in data.pop("channels")]


RULE_INITIAL = ("name", "kinds", "min_severity", "group_window_seconds", "repeat_interval_seconds", "notify_resolved")


def rule_initial(rule: Rule) -> dict[str, Any]:
    initial: dict[str, Any] = {name: getattr(rule, name) for name in RULE_INITIAL}
    initial.update(enabled=rule.enabled, channels=[c.pk for c in rule.channels.all()])
    initial.update(
        scope_kind=rule.scope_kind,
        scope_cluster=rule.scope_cluster,
        scope_namespace=rule.scope_namespace,
        scope_application=rule.scope_application,
    )
    return initial


class SubscriptionForm(_ScopedForm):
    email = forms.EmailField(required=False, help_text="Empty: your account's address.")


class SubscriptionEditForm(SubscriptionForm):
    enabled = forms.BooleanField(required=False, initial=True)


SUBSCRIPTION_INITIAL = (
    "kinds",
    "min_severity",
    "email",
    "group_window_seconds",
    "enabled",
    "scope_kind",
    "scope_cluster",
    "scope_namespace",
    "scope_application",
)


def subscription_initial(subscription: Subscription) -> dict[str, Any]:
    return {name: getattr(subscription, name) for name in SUBSCRIPTION_INITIAL}


class ConfirmForm(forms.Form):
    """A deletion's confirmation: the object's name typed (channels) or a tick (rules, subscriptions)."""

    confirm = forms.CharField(required=False)


class DeleteForm(forms.Form):
    confirm = forms.BooleanField(label="Yes, delete it")


class EventFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Text")
    kind = forms.CharField(required=False, max_length=100, help_text="A kind or its beginning: clusters.")
    severity = forms.ChoiceField(choices=[("", "any severity"), *SEVERITY_CHOICES], required=False)
    state = forms.ChoiceField(
        required=False,
        choices=[
            ("", "any state"),
            (MessageState.OPEN, "open condition"),
            (MessageState.RESOLVED, "resolved condition"),
            ("unrouted", "no rule matched"),
            ("dead", "with a dead letter"),
        ],
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class DeliveryFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Text")
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *DeliveryStatus.choices])
    channel = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
