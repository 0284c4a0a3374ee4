"""Query parameters of the traffic API, checked strictly: a bad value, or a parameter the endpoint does not know,
is a 400 naming it. The portal's range selector reads the same range form."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from apps.traffic.queries import SORTS

DEFAULT_RANGE = timedelta(hours=1)
MAX_RANGE = timedelta(days=400)
PAGING = frozenset({"limit", "offset", "format"})
SORT_CHOICES = [(s, s) for name in SORTS for s in (name, f"-{name}")]
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")


class RangeForm(forms.Form):
    """``since`` and ``until`` (ISO 8601); by default the last hour. ``since`` must come first, at most 400 days
    before ``until``."""

    since = forms.DateTimeField(required=False)
    until = forms.DateTimeField(required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        until = data.get("until") or timezone.now()
        since = data.get("since") or until - DEFAULT_RANGE
        if since >= until:
            self.add_error("since", "since must be before until.")
        elif until - since > MAX_RANGE:
            self.add_error("since", "The range may cover at most 400 days.")
        data["since"], data["until"] = since, until
        return data


class RouteFilterForm(RangeForm):
    application = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    method = forms.ChoiceField(required=False, choices=[(m, m) for m in METHODS])
    status_class = forms.IntegerField(required=False, min_value=0, max_value=5)


class RoutesForm(RouteFilterForm):
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)


class SeriesForm(RouteFilterForm):
    route = forms.CharField(required=False, max_length=300)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("application") and "application" not in self.errors:
            self.add_error("application", "Name the application whose series to read.")
        return data


class GraphForm(RangeForm):
    application = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    diff_from = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    diff_to = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        wanted = [name for name in ("diff_from", "diff_to") if data.get(name)]
        if len(wanted) == 1:
            missing = "diff_to" if wanted == ["diff_from"] else "diff_from"
            self.add_error(missing, "Diff mode needs both diff_from and diff_to (two versions).")
        elif wanted and not data.get("application") and "application" not in self.errors:
            self.add_error("application", "Diff mode compares two versions of one application: name it.")
        return data


def parse(form_class: type[forms.Form], params: Any, allowed: frozenset[str] = PAGING) -> dict[str, Any]:
    """The cleaned parameters, or a 400 naming each bad or unknown one."""
    unknown = sorted(set(params) - set(form_class.base_fields) - allowed)
    if unknown:
        raise ValidationError({name: ["Unknown parameter."] for name in unknown})
    form = form_class(params)
    if not form.is_valid():
        raise ValidationError({name: [str(e) for e in errors] for name, errors in form.errors.items()})
    return dict(form.cleaned_data)
