"""Portal forms of the policy pages. They check shapes only (YAML parses, JSON is an object); the services check
the rules (CEL compiles, limits, scopes, checks, parameters) and name the field at fault, which the views put on
the matching form field.

Validations and variables are written as YAML (JSON is YAML too), as in a ValidatingAdmissionPolicy; match labels
and binding parameters likewise; kinds and namespaces are comma-separated.
"""

from __future__ import annotations

from typing import Any

import yaml
from django import forms

from apps.compliance.checks import Severity
from apps.compliance.models import Mode, Policy
from apps.core.access import ScopeKind
from apps.core.errors import DomainError
from apps.core.yamlsafe import load_bounded

MAX_TEXT = 64 * 1024
EXAMPLE = '- expression: "object.spec.replicas >= 2"\n  message: "run at least two replicas"\n'


def _yaml(text: str, field: str, kind: type, what: str) -> Any:
    if not text.strip():
        return kind()
    try:
        value = load_bounded(text, field=field, what=what, max_bytes=MAX_TEXT)
    except DomainError as exc:
        raise forms.ValidationError(exc.message) from None
    if not isinstance(value, kind):
        raise forms.ValidationError(f"{what} is a YAML {'list' if kind is list else 'mapping'}")
    return value


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True) if value else ""


class PolicyForm(forms.Form):
    """A custom CEL policy (the key is fixed once created), and the workload to test it against before saving."""

    key = forms.SlugField(max_length=100, help_text="lower-case letters, digits and dashes; fixed once created")
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    severity = forms.ChoiceField(choices=[(str(s), str(s)) for s in Severity], initial=Severity.MEDIUM)
    validations = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "placeholder": EXAMPLE}),
        help_text="YAML list of {expression, message or messageExpression}, as a ValidatingAdmissionPolicy writes "
        "them; object, params, request and variables are in scope",
    )
    variables = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="YAML list of {name, expression}; later ones see earlier ones as variables.<name>",
    )
    match_kinds = forms.CharField(
        required=False, max_length=1000, label="Kinds", help_text="comma-separated; empty: all"
    )
    match_namespaces = forms.CharField(
        required=False, max_length=4000, label="Namespaces", help_text="names or globs (team-*); empty: all"
    )
    match_labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        label="Labels",
        help_text="YAML mapping; all must be equal; empty: any labels",
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="its bindings apply while enabled")
    test_workload = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Test against workload")
    test_params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        label="Test parameters",
        help_text="YAML mapping, seen as params (a binding gives them)",
    )

    def __init__(self, *args: Any, workloads: Any = (), policy: Policy | None = None, **kwargs: Any) -> None:
        """``workloads``: the ones offered to test against (the first ones the viewer may read)."""
        super().__init__(*args, **kwargs)
        chooser: Any = self.fields["test_workload"]
        chooser.choices = [
            ("", "choose a workload"),
            *((str(w.pk), f"{w.cluster.name} / {w.namespace} / {w.kind} {w.name}") for w in workloads or ()),
        ]
        if policy is not None:
            self.fields["key"].disabled = True
            self.fields["enabled"].disabled = True  # enabling has its own button (with a dry run first)

    def clean_validations(self) -> list[Any]:
        return list(_yaml(self.cleaned_data.get("validations") or "", "validations", list, "validations"))

    def clean_variables(self) -> list[Any]:
        return list(_yaml(self.cleaned_data.get("variables") or "", "variables", list, "variables"))

    def clean_match_labels(self) -> dict[str, Any]:
        return dict(_yaml(self.cleaned_data.get("match_labels") or "", "match_labels", dict, "labels"))

    def clean_test_params(self) -> dict[str, Any]:
        return dict(_yaml(self.cleaned_data.get("test_params") or "", "test_params", dict, "parameters"))

    def match(self) -> dict[str, Any]:
        data = self.cleaned_data
        match: dict[str, Any] = {
            "kinds": _names(data.get("match_kinds") or ""),
            "namespaces": _names(data.get("match_namespaces") or ""),
            "labels": data.get("match_labels") or {},
        }
        return {k: v for k, v in match.items() if v}

    def values(self) -> dict[str, Any]:
        """The service's keyword arguments (the key and enabled only when creating)."""
        data = self.cleaned_data
        values = {
            "name": data["name"],
            "description": data.get("description") or "",
            "severity": data["severity"],
            "validations": data["validations"],
            "variables": data["variables"],
            "match": self.match(),
        }
        if not self.fields["key"].disabled:
            values.update(key=data["key"], enabled=bool(data.get("enabled")))
        return values

    def place(self, exc: DomainError) -> None:
        """A service's error on the form field it names (``validations[0].expression`` → validations), with the
        position a CEL compile error carries."""
        field = exc.field or ""
        target = field.split("[", 1)[0].split(".", 1)[0]
        target = {"match": "match_kinds"}.get(target, target)
        if field.startswith("match."):
            target = {"kinds": "match_kinds", "namespaces": "match_namespaces", "labels": "match_labels"}.get(
                field.split(".", 1)[1], "match_kinds"
            )
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        where = f" (line {line}, column {column})" if line is not None else ""
        message = f"{field}{where}: {exc.message}" if field and field != target else f"{exc.message}{where}"
        self.add_error(target if target in self.fields else None, message)


def policy_initial(policy: Policy) -> dict[str, Any]:
    match = policy.match or {}
    return {
        "key": policy.key,
        "name": policy.name,
        "description": policy.description,
        "severity": policy.severity,
        "validations": dump(policy.validations),
        "variables": dump(policy.variables),
        "match_kinds": ", ".join(match.get("kinds") or []),
        "match_namespaces": ", ".join(match.get("namespaces") or []),
        "match_labels": dump(match.get("labels") or {}),
        "enabled": policy.enabled,
    }


class BindingForm(forms.Form):
    """Where a policy (or one of its checks) applies, in which mode and with which parameters."""

    check_id = forms.ChoiceField(required=False, label="Check", help_text="empty: every check of the policy")
    scope_kind = forms.ChoiceField(choices=ScopeKind.choices, initial=ScopeKind.GLOBAL, label="Scope")
    scope_cluster = forms.ChoiceField(required=False, label="Cluster")
    scope_namespace = forms.CharField(required=False, max_length=253, label="Namespace")
    scope_application = forms.CharField(required=False, max_length=253, label="Application")
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.AUDIT)
    params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        label="Parameters",
        help_text="JSON or YAML object; built-ins: {check id: {parameter: value}}; CEL: seen as params",
    )
    enabled = forms.BooleanField(required=False, initial=True)
    warn_in_maintenance = forms.BooleanField(
        required=False, label="Hold enforce to warn during maintenance windows (the change calendar)"
    )
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, checks: list[str], clusters: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check: Any = self.fields["check_id"]
        check.choices = [("", "every check"), *((c, c) for c in checks)]
        cluster: Any = self.fields["scope_cluster"]
        cluster.choices = [("", "—"), *((str(c.pk), c.name) for c in clusters)]

    def clean_params(self) -> dict[str, Any]:
        return dict(_yaml(self.cleaned_data.get("params") or "", "params", dict, "parameters"))

    def values(self) -> dict[str, Any]:
        data = self.cleaned_data
        keys = ("check_id", "scope_kind", "scope_cluster", "scope_namespace", "scope_application", "mode", "params")
        return {
            **{k: data.get(k) or "" for k in keys},
            "params": data.get("params") or {},
            "enabled": data["enabled"],
            "warn_in_maintenance": data["warn_in_maintenance"],
        }

    def place(self, exc: DomainError) -> None:
        field = exc.field or ""
        target = field.split(".", 1)[0]
        message = f"{field}: {exc.message}" if field != target else exc.message
        self.add_error(target if target in self.fields else None, message)


def binding_initial(binding: Any) -> dict[str, Any]:
    return {
        "check_id": binding.check_id,
        "scope_kind": binding.scope_kind,
        "scope_cluster": binding.scope_cluster,
        "scope_namespace": binding.scope_namespace,
        "scope_application": binding.scope_application,
        "mode": binding.mode,
        "params": dump(binding.params),
        "enabled": binding.enabled,
        "warn_in_maintenance": binding.warn_in_maintenance,
    }


class PolicyDeleteForm(forms.Form):
    confirm = forms.CharField(max_length=100, label="Type the policy's key to confirm")


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(label="Yes, remove it")


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)
