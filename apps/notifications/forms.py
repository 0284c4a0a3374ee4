"""Forms of the notifications pages: shapes only (the services check the rules and name the field)."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.core.access import ScopeKind
from apps.notifications.models import SEVERITY_CHOICES, Channel, ChannelKind


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=ChannelKind.choices)
    target = forms.CharField(
        required=False, help_text="E-mail: addresses, comma-separated. Webhook: its URL. Slack/Teams: leave empty."
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Slack/Teams: the incoming webhook URL. Webhook: the HMAC signing key. Never shown again.",
    )
    max_per_minute = forms.IntegerField(min_value=1, max_value=10000, initial=30)


class KindsField(forms.CharField):
    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value) or ""
        return [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]


class _ScopedForm(forms.Form):
    kinds = KindsField(help_text="Event kinds or globs, comma-separated: clusters.*, cron.run_failed, *")
    min_severity = forms.ChoiceField(choices=SEVERITY_CHOICES, initial="warning")
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, initial=ScopeKind.GLOBAL)
    scope_cluster = forms.CharField(required=False, max_length=64, label="Cluster id")
    scope_namespace = forms.CharField(required=False, max_length=253)
    scope_application = forms.CharField(required=False, max_length=253)
    group_window_seconds = forms.IntegerField(min_value=0, max_value=86400, initial=30)


class RuleForm(_ScopedForm):
    name = forms.CharField(max_length=100)
    channels = forms.ModelMultipleChoiceField(queryset=Channel.objects.none(), required=False)
    repeat_interval_seconds = forms.IntegerField(min_value=0, max_value=86400, initial=0)
    notify_resolved = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args: Any, channels: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if channels is not None:
            self.fields["channels"].queryset = channels  # type: ignore[attr-defined]


class SubscriptionForm(_ScopedForm):
    email = forms.EmailField(required=False, help_text="Empty: your account's address.")


class ConfirmForm(forms.Form):
    confirm = forms.CharField(required=False)


class EventFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100)
    severity = forms.ChoiceField(choices=[("", "any"), *SEVERITY_CHOICES], required=False)
