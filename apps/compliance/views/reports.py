"""The compliance report download of the portal: the results the viewer may read, with the page's filters, as
OpenReports JSON or YAML, or CSV (see :mod:`apps.compliance.reports`)."""

from __future__ import annotations

import orjson
from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.compliance import reports, selectors
from apps.compliance.views.results import ResultFilterForm, selection

FORMATS = {"json": "application/json", "yaml": "application/yaml", "csv": "text/csv; charset=utf-8"}


class ReportForm(ResultFilterForm):
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], required=False)


def download_name(extension: str) -> str:
    return f"icc-compliance-{timezone.now():%Y%m%d-%H%M%S}.{extension}"


@login_required
@require_GET
def report(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form = ReportForm(request.GET)
    if not form.is_valid():
        fields = ", ".join(f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items())
        return HttpResponseBadRequest(f"bad report filter ({fields})", content_type="text/plain")
    filters = {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
    kind = filters.pop("format", "json")
    rows = selectors.results(request.user, status=filters.get("status", ""), **selection(filters))
    disposition = f'attachment; filename="{download_name(kind)}"'
    if kind == "csv":
        response: HttpResponse | StreamingHttpResponse = StreamingHttpResponse(
            reports.as_csv(rows), content_type=FORMATS[kind]
        )
    else:
        if rows.count() > reports.MAX_RESULTS:
            return HttpResponseBadRequest(
                f"more than {reports.MAX_RESULTS} results: narrow the report (cluster, namespace, application, "
                "status) or download CSV",
                content_type="text/plain",
            )
        data = reports.openreports(rows)
        body = orjson.dumps(data, option=orjson.OPT_INDENT_2) if kind == "json" else reports.as_yaml(data).encode()
        response = HttpResponse(body, content_type=FORMATS[kind])
    response["Content-Disposition"] = disposition
    return response
