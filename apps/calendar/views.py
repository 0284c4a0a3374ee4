"""Portal pages of the change calendar: a month or week view (occurrences colored by kind, in UTC), the entries the
viewer reads, and an entry's editor with a live preview of its next occurrences. Writes go through the services."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.calendar import recurrence, selectors, services
from apps.calendar.forms import CalendarFilterForm, DeleteForm, EntryForm, initial_of
from apps.calendar.models import CalendarEntry
from apps.core import portal
from apps.core.access import Action, is_platform_superuser, scopes_for
from apps.core.errors import DomainError, ForbiddenError

ENTRIES_PAGE = 50
PREVIEW_COUNT = 10


def _entry(request: HttpRequest, pk: int) -> CalendarEntry:
    found = selectors.entry(request.user, pk)
    if found is None:
        raise Http404("no such calendar entry")
    return found


def _may_create(user: Any) -> bool:
    return is_platform_superuser(user) or bool(scopes_for(user, Action.CONFIGURE))


def _grid(view: str, day: date, shown: list[selectors.Shown]) -> list[list[dict[str, Any]]]:
    """Weeks (rows of seven days, Monday first) from the first Monday on or before the period, with the
    occurrences touching each day (UTC)."""
    if view == "week":
        first = day - timedelta(days=day.weekday())
        last = first + timedelta(days=7)
    else:
        month_start = day.replace(day=1)
        first = month_start - timedelta(days=month_start.weekday())
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        last = next_month + timedelta(days=(7 - next_month.weekday()) % 7)
    weeks: list[list[dict[str, Any]]] = []
    current = first
    while current < last:
        lo = datetime.combine(current, time(), tzinfo=UTC)
        hi = lo + timedelta(days=1)
        cell = {"day": current, "in_month": view == "week" or current.month == day.month}
        cell["items"] = [s for s in shown if s.starts < hi and s.ends > lo]
        if current.weekday() == 0:
            weeks.append([])
        weeks[-1].append(cell)
        current += timedelta(days=1)
    return weeks


@login_required
@require_GET
def calendar_page(request: HttpRequest) -> HttpResponse:
    form = CalendarFilterForm(request.GET or None)
    filters = portal.valid_filters(form)
    view = filters.get("view") or "month"
    day = filters.get("date") or datetime.now(UTC).date()
    rows = selectors.entries(request.user, kind=filters.get("kind", ""))
    first_guess = day - timedelta(days=40)
    lo = datetime.combine(first_guess, time(), tzinfo=UTC)
    shown = selectors.occurrences(rows.filter(enabled=True), lo, lo + timedelta(days=90))
    weeks = _grid(view, day, shown)
    step = timedelta(days=7) if view == "week" else timedelta(days=31)
    page = portal.paginate(rows, request.GET.get("page"), ENTRIES_PAGE)
    context = {
        "form": form,
        "view": view,
        "day": day,
        "weeks": weeks,
        "previous": (day.replace(day=1) - timedelta(days=1)) if view == "month" else day - step,
        "next": (day.replace(day=1) + step) if view == "month" else day + step,
        "page": page,
        "may_create": _may_create(request.user),
        "kind": filters.get("kind", ""),
    }
    return render(request, "calendar/calendar.html", context)


def _page(
    request: HttpRequest, entry: CalendarEntry | None, *, form: EntryForm | None = None, status: int = 200
) -> HttpResponse:
    preview_url = reverse("calendar:preview")
    if form is None:
        initial = initial_of(entry) if entry else {"timezone": "UTC", "enabled": True, "duration_minutes": 60}
        form = EntryForm(initial=initial, preview_url=preview_url)
    may_edit = entry is None or selectors.can_configure(request.user, entry)
    context = {
        "entry": entry,
        "form": form,
        "may_edit": may_edit,
        "delete_form": DeleteForm(),
        "preview": _preview(entry) if entry else [],
    }
    return render(request, "calendar/entry.html", context, status=status)


def _preview(entry: CalendarEntry) -> list[selectors.Shown]:
    now = datetime.now(UTC)
    return selectors.occurrences_of(entry, now, now + timedelta(days=3 * 366), PREVIEW_COUNT)


def _refused(request: HttpRequest, exc: DomainError, what: str, target: Any) -> None:
    if isinstance(exc, ForbiddenError):
        portal.deny(request, what, target)


@login_required
@require_http_methods(["GET", "POST"])
def entry_new(request: HttpRequest) -> HttpResponse:
    if not _may_create(request.user):
        portal.deny(request, "calendar.entry.create", None)
    if request.method == "GET":
        return _page(request, None)
    form = EntryForm(request.POST, preview_url=reverse("calendar:preview"))
    if not form.is_valid():
        return _page(request, None, form=form, status=400)
    try:
        entry = services.entry_create(by=request.user, **form.values())
    except DomainError as exc:
        _refused(request, exc, "calendar.entry.create", None)
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _page(request, None, form=form, status=exc.status)
    messages.success(request, f"{entry} created.")
    return redirect("calendar:entry", pk=entry.pk)


@login_required
@require_http_methods(["GET", "POST"])
def entry_detail(request: HttpRequest, pk: int) -> HttpResponse:
    entry = _entry(request, pk)
    if request.method == "GET":
        return _page(request, entry)
    if not selectors.can_configure(request.user, entry):
        portal.deny(request, "calendar.entry.update", entry)
    form = EntryForm(request.POST, preview_url=reverse("calendar:preview"))
    if not form.is_valid():
        return _page(request, entry, form=form, status=400)
    try:
        saved = services.entry_update(entry, by=request.user, **form.values())
    except DomainError as exc:
        _refused(request, exc, "calendar.entry.update", entry)
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _page(request, entry, form=form, status=exc.status)
    messages.success(request, f"{saved} saved.")
    return redirect("calendar:entry", pk=saved.pk)


@login_required
@require_POST
def entry_delete(request: HttpRequest, pk: int) -> HttpResponse:
    entry = _entry(request, pk)
    if not selectors.can_configure(request.user, entry):
        portal.deny(request, "calendar.entry.delete", entry)
    if not DeleteForm(request.POST).is_valid():
        messages.error(request, "Tick the confirmation to delete this entry.")
        return _page(request, entry, status=400)
    services.entry_delete(entry, by=request.user)
    messages.success(request, f"{entry} deleted.")
    return redirect("calendar:calendar")


@login_required
@require_GET
def preview(request: HttpRequest) -> HttpResponse:
    """The next occurrences of the timing in the editor (nothing stored); errors name the field."""
    form = EntryForm(request.GET, preview_url="")
    form.is_valid()
    data = form.cleaned_data
    error, shown = "", []
    if {"start_date", "start_time", "timezone", "duration_minutes"} <= set(data):
        try:
            recurrence.validate(
                rrule_text=data.get("rrule", ""),
                start_date=data["start_date"],
                start_time=data["start_time"],
                timezone=data["timezone"],
                duration_minutes=data["duration_minutes"],
            )
        except DomainError as exc:
            error = f"{exc.field}: {exc.message}"
        else:
            draft = CalendarEntry(**{k: data[k] for k in ("start_date", "start_time", "timezone", "duration_minutes")})
            draft.rrule = (data.get("rrule") or "").upper()
            shown = _preview(draft)
    else:
        error = "give a start date, a time, a time zone and a duration"
    return render(request, "calendar/_preview.html", {"preview": shown, "error": error})
