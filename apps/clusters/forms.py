"""Portal forms for clusters and workloads. They check shapes only; the services decide everything else.

Secrets (a token, a kubeconfig, a CA bundle) are write-only: their widgets never render a submitted value
back into the page, so a form re-shown with errors asks for them again.
"""

from __future__ import annotations

from typing import Any

from django import forms

from apps.clusters.credentials import MAX_KUBECONFIG_BYTES
from apps.clusters.models import AuthMode, ClusterStatus, WorkloadKind

__all__ = ["MAX_KUBECONFIG_BYTES"]  # the views refuse larger uploads before reading them
CONNECTION_FIELDS = ("auth_mode", "kubeconfig", "kubeconfig_text", "context", "api_url", "token", "ca_data")


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never echoes what was typed into it."""

    def format_value(self, value: Any) -> str | None:
        return None


class ConnectionForm(forms.Form):
    """How to reach the API server: a kubeconfig (file or pasted) and a context, or a token + CA bundle."""

    auth_mode = forms.ChoiceField(choices=AuthMode.choices, initial=AuthMode.TOKEN, widget=forms.RadioSelect)
    kubeconfig = forms.FileField(required=False, label="Kubeconfig file")
    kubeconfig_text = forms.CharField(
        required=False,
        label="…or paste the kubeconfig",
        widget=WriteOnlyTextarea(attrs={"rows": 6, "spellcheck": "false", "autocomplete": "off"}),
    )
    context = forms.CharField(required=False, max_length=253, label="Context")
    api_url = forms.CharField(
        required=False,
        max_length=500,
        label="API server URL",
        widget=forms.TextInput(attrs={"placeholder": "https://"}),
    )
    token = forms.CharField(
        required=False,
        max_length=20000,
        label="Bearer token",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    ca_data = forms.CharField(
        required=False,
        max_length=200000,
        label="CA bundle (PEM)",
        widget=WriteOnlyTextarea(attrs={"rows": 4, "spellcheck": "false", "placeholder": "PEM: -----BEGIN ..."}),
    )
    allow_insecure = forms.BooleanField(
        required=False,
        label="Allow an insecure connection (plain HTTP, or no TLS verification)",
    )

    def clean_kubeconfig(self) -> str:
        upload = self.cleaned_data.get("kubeconfig")
        if not upload:
            return ""
        if upload.size > MAX_KUBECONFIG_BYTES:
            raise forms.ValidationError(f"larger than {MAX_KUBECONFIG_BYTES // 1024} KiB; is this a kubeconfig?")
        try:
            text: str = upload.read().decode("utf-8")
        except UnicodeDecodeError:
            raise forms.ValidationError("not a text file (UTF-8 expected)") from None
        return text

    def kubeconfig_given(self) -> str:
        """The kubeconfig of this submission (an uploaded file wins over pasted text)."""
        return self.cleaned_data.get("kubeconfig") or self.cleaned_data.get("kubeconfig_text") or ""

    def connection(self, kubeconfig: str) -> dict[str, Any]:
        """Keyword arguments for the services' ``build_credentials``."""
        data = self.cleaned_data
        return {
            "auth_mode": data["auth_mode"],
            "api_url": data.get("api_url") or "",
            "token": data.get("token") or "",
            "ca_data": data.get("ca_data") or "",
            "kubeconfig": kubeconfig,
            "context": data.get("context") or "",
            "allow_insecure": bool(data.get("allow_insecure")),
        }


class RegisterForm(ConnectionForm):
    name = forms.SlugField(max_length=63, help_text="lower-case letters, digits and dashes")
    description = forms.CharField(required=False, max_length=500)
    sync_interval_seconds = forms.IntegerField(
        required=False, min_value=10, max_value=86400, label="Full sync every (seconds)", help_text="default 300"
    )

    field_order = ("name", "description", "sync_interval_seconds", *CONNECTION_FIELDS, "allow_insecure")


class EditForm(ConnectionForm):
    description = forms.CharField(required=False, max_length=500)
    sync_interval_seconds = forms.IntegerField(min_value=10, max_value=86400, label="Full sync every (seconds)")
    replace_credentials = forms.BooleanField(required=False, label="Replace the credentials")

    field_order = ("description", "sync_interval_seconds", "replace_credentials", *CONNECTION_FIELDS, "allow_insecure")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["auth_mode"].required = False


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, help_text="goes into the audit trail")


class DeleteForm(forms.Form):
    confirm = forms.CharField(max_length=63, label="Type the cluster's name to confirm")
    reason = forms.CharField(required=False, max_length=500)


class ScaleForm(forms.Form):
    replicas = forms.IntegerField(min_value=0, max_value=10000)
    reason = forms.CharField(max_length=500)
    override = forms.BooleanField(required=False, label="Override the change freeze")


class RestartForm(forms.Form):
    reason = forms.CharField(max_length=500)
    override = forms.BooleanField(required=False, label="Override the change freeze")


class PodDeleteForm(forms.Form):
    reason = forms.CharField(max_length=500)
    override = forms.BooleanField(required=False, label="Override the change freeze")


class LogForm(forms.Form):
    container = forms.CharField(required=False, max_length=253)
    tail_lines = forms.IntegerField(required=False, min_value=1, max_value=10000, initial=100)


class ClusterFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *ClusterStatus.choices])
    q = forms.CharField(required=False, max_length=100, label="Search")
    page = forms.IntegerField(required=False, min_value=1)


class WorkloadFilterForm(forms.Form):
    namespace = forms.CharField(required=False, max_length=253)
    kind = forms.ChoiceField(required=False, choices=[("", "any kind"), *WorkloadKind.choices])
    q = forms.CharField(required=False, max_length=100, label="Search")
    page = forms.IntegerField(required=False, min_value=1)


class ApplicationFilterForm(forms.Form):
    active = forms.ChoiceField(
        required=False, choices=[("yes", "active"), ("no", "inactive"), ("all", "all")], initial="yes"
    )
    cluster = forms.IntegerField(required=False, min_value=1)
    namespace = forms.CharField(required=False, max_length=253)
    q = forms.CharField(required=False, max_length=100, label="Search")
    page = forms.IntegerField(required=False, min_value=1)
