"""Portal pages of the audit trail: search, live tail, history, streamed exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.audit import exports
from apps.audit.events import history as history_topic
from apps.audit.selectors import AuditFilterForm, audit_events, object_history, parse_filters
from apps.audit.verification import last_verify_result
from apps.core.errors import DomainError

PAGE = 50


def _query(request: HttpRequest) -> str:
    return urlencode([(k, v) for k, v in request.GET.items() if k != "before" and v])


@login_required
@require_GET
def events(request: HttpRequest) -> HttpResponse:
    error = ""
    filters: dict[str, Any] = {}
    params = {k: v for k, v in request.GET.items() if v}
    try:
        filters = parse_filters(params)
    except DomainError as exc:
        error = f"{exc.field}: {exc.message}"
    queryset = audit_events(viewer=request.user, filters=filters) if not error else audit_events(viewer=None)
    before = request.GET.get("before", "")
    if before.isdigit():
        queryset = queryset.filter(seq__lt=int(before))
    page = list(queryset[: PAGE + 1])
    context = {
        "form": AuditFilterForm(request.GET or None),
        "events": page[:PAGE],
        "next_before": page[PAGE - 1].seq if len(page) > PAGE else None,
        "query": _query(request),
        "filters": filters,
        "error": error,
        "verify": last_verify_result(),
        # The live tail only makes sense on the unfiltered first page.
        "live_topics": "audit" if request.user.is_staff and not filters and not before else "",
    }
    return render(request, "audit/events.html", context, status=400 if error else 200)


@login_required
@require_GET
def history(request: HttpRequest, target_type: str, target_id: str) -> HttpResponse:
    topic = history_topic(target_type, target_id) or ""
    return render(
        request,
        "audit/history_page.html",
        {
            "events": object_history(viewer=request.user, target_type=target_type, target_id=target_id),
            "target_type": target_type,
            "target_id": target_id,
            "panel_id": topic.replace(".", "-"),
            "live_topics": topic,
        },
    )


def _export(render_rows: Callable[[Any], Iterator[bytes]], content_type: str, extension: str) -> Any:
    @login_required
    @require_GET
    def view(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
        try:
            filters = parse_filters({k: v for k, v in request.GET.items() if v})
        except DomainError as exc:
            return HttpResponse(f"{exc.field}: {exc.message}\n", status=400, content_type="text/plain")
        queryset = audit_events(viewer=request.user, filters=filters)
        response = StreamingHttpResponse(render_rows(queryset), content_type=content_type)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="icc-audit-{stamp}.{extension}"'
        return response

    return view


export_csv = _export(exports.export_csv, "text/csv; charset=utf-8", "csv")
export_jsonl = _export(exports.export_jsonl, "application/x-ndjson", "jsonl")
